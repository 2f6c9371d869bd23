"""Ablations of the fused model's choices, judged on the validation split only.

    python -m benchmarks.ablation --movielens ../shared/data [--variants default no-recent ...]

Each variant is the ``kgrec train`` default with one choice changed. It is fitted on the benchmark's *train* part
(selection inside ``fit`` as usual) and scored on the *validation* part (docs/evaluation.md): the test set is not
read, so these numbers can justify a default without touching the test set.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from benchmarks._report import report
from kgrec import loaders
from kgrec.evaluation.baselines.base import FitContext
from kgrec.evaluation.fused import FusedScorer
from kgrec.evaluation.metrics import evaluate_topk, full_ranking_topk
from kgrec.evaluation.split import make_split
from kgrec.fusion.config import RecommenderConfig

VARIANTS: dict[str, dict] = {
    "default": {},
    "no-recent (recent_window 0)": {"model": {"recent_window": 0}},
    "recent_window 20": {"model": {"recent_window": 20}},
    "no content dropout": {"model": {"content_dropout": 0.0}},
    "1 GNN layer": {"model": {"layers": 1}},
    "no item text in the GNN": {"model": {"item_text_in_gnn": False}},
    "2048 negatives": {"train": {"negatives": 2048}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movielens", required=True, metavar="ROOT")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), help=f"any of {list(VARIANTS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "ablation.json"))
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    split = make_split(loaders.movielens(a.movielens))
    train, val = split.train, split.val
    users = np.unique(val.users)
    rows = []
    for name in a.variants:
        t0 = time.perf_counter()
        m = FusedScorer(name, RecommenderConfig.model_validate(VARIANTS[name])).fit(
            FitContext(train, None, a.seed, False, split.dataset_of(split.train_frame), split.vocabs.user.ids, split.vocabs.item.ids)
        )
        r = evaluate_topk(full_ranking_topk(m.scores, users, train.by_user()), users, train, val)
        rows.append({"variant": name, "val_ndcg@20": r["ndcg@20"], "val_recall@20": r["recall@20"],
                     "val_cold_recall@20": r["cold_recall@20"], "best_epoch": m.best_epoch,
                     "seconds_per_epoch": m.seconds_per_epoch, "fit_seconds": time.perf_counter() - t0})
        logging.info("%s", rows[-1])
    report({"seed": a.seed, "rows": rows}, a.out)


if __name__ == "__main__":
    main()
