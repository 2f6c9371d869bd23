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
import torch

from benchmarks._report import report
from kgrec import loaders
from kgrec.evaluation.baselines.base import FitContext
from kgrec.evaluation.fused import FusedScorer
from kgrec.evaluation.metrics import cold_items, evaluate_topk, full_ranking_topk
from kgrec.evaluation.split import make_split
from kgrec.fusion.config import RecommenderConfig

VARIANTS: dict[str, dict] = {
    "default": {},
    "no-recent (recent_window 0)": {"model": {"recent_window": 0}},
    "recent_window 20": {"model": {"recent_window": 20}},
    "no content dropout": {"model": {"content_dropout": 0.0}},
    "1 GNN layer": {"model": {"layers": 1}},
    "item text also in the GNN": {"model": {"item_text_in_gnn": True}},
    "1 GNN layer, item text also in the GNN": {"model": {"layers": 1, "item_text_in_gnn": True}},
    "fusion: plain mean instead of the learned gate": {"model": {"fusion": "mean"}},
    "128 negatives": {"train": {"negatives": 128}},
    "2048 negatives": {"train": {"negatives": 2048}},
    "no weight decay": {"train": {"weight_decay": 0.0}},
    "weight decay 1e-4": {"train": {"weight_decay": 1e-4}},
    "content dropout 0.2": {"model": {"content_dropout": 0.2}},
    "no recency weighting of graph edges": {"model": {"recency_half_life": 0.0}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movielens", required=True, metavar="ROOT")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), help=f"any of {list(VARIANTS)}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--cold-boost", type=float, nargs="+", default=None, metavar="B",
                    help="also score each variant with B standard deviations of its scores added to every cold item "
                         "(items with no interaction in train): does the model rank cold items too low?")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "ablation.json"))
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    split = make_split(loaders.movielens(a.movielens))
    train, val = split.train, split.val
    users = np.unique(val.users)
    dataset = split.dataset_of(split.train_frame)
    rows = []
    for seed in a.seeds:
        for name in a.variants:
            t0 = time.perf_counter()
            m = FusedScorer(name, RecommenderConfig.model_validate(VARIANTS[name])).fit(
                FitContext(train, None, seed, False, dataset, split.vocabs.user.ids, split.vocabs.item.ids)
            )
            fit_seconds = time.perf_counter() - t0
            sd = float(m.scores(users).std())
            cold = torch.from_numpy(cold_items(train)).float()
            for boost in a.cold_boost or [0.0]:
                def score(u: np.ndarray, b: float = boost) -> torch.Tensor:
                    return m.scores(u) + b * sd * cold

                r = evaluate_topk(full_ranking_topk(score, users, train.by_user()), users, train, val)
                label = name if a.cold_boost is None else f"{name} + cold boost {boost:g} sd"
                rows.append({"variant": label, "seed": seed, "val_ndcg@20": r["ndcg@20"], "val_recall@20": r["recall@20"],
                             "val_cold_recall@20": r["cold_recall@20"], "best_epoch": m.best_epoch,
                             "seconds_per_epoch": m.seconds_per_epoch, "fit_seconds": fit_seconds})
                logging.info("%s", rows[-1])
    report({"seeds": a.seeds, "rows": rows, "summary": summarise(rows)}, a.out)


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation (ddof 1) of each variant's validation figures over its seeds."""
    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        row: dict = {"variant": name, "seeds": len(mine)}
        for key in ("val_ndcg@20", "val_recall@20", "val_cold_recall@20", "best_epoch", "seconds_per_epoch"):
            vals = np.array([r[key] for r in mine], dtype=float)
            row[key] = float(vals.mean())
            row[key + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
        out.append(row)
    return out


if __name__ == "__main__":
    main()
