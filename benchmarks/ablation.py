"""Ablations of the fused model's choices, judged on the validation split only.

    python -m benchmarks.ablation --movielens ../shared/data [--variants default no-recent ...]
    python -m benchmarks.ablation --datasets lastfm-hetrec2011 [--variants ...]   # a converted set (benchmarks/datasets)

Each variant is the ``kgrec train`` default with one choice changed. It is fitted on the benchmark's *train* part
(selection inside ``fit`` as usual) and scored on the *validation* part (docs/evaluation.md): the test set is not
read, so these numbers can justify a default without touching the test set.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._report import report
from benchmarks.quality import DATASETS, load_named
from kgrec.evaluation.baselines.base import FitContext
from kgrec.evaluation.fused import FusedScorer
from kgrec.evaluation.metrics import cold_items, evaluate_topk, full_ranking_topk
from kgrec.evaluation.split import make_split
from kgrec.fusion.config import RecommenderConfig
from kgrec.loaders.schema import Dataset

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
    "3 GNN layers": {"model": {"layers": 3}},
    "no text tower": {"model": {"use_text": False}},
    "no text tower, no recent window": {"model": {"use_text": False, "recent_window": 0}},
    "exact softmax over all items": {"train": {"full_softmax_items": 10_000_000}},
    "dim 128": {"model": {"dim": 128}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movielens", metavar="ROOT", help="folder holding ml-latest-small/ (the default data set)")
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, default=["movielens"],
                    help="named data sets (benchmarks.quality's), one after the other")
    ap.add_argument("--data-home", type=Path, default=Path(os.environ.get("KGREC_DATASETS", "/work/datasets")),
                    help="folder of the converted data sets")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), help=f"any of {list(VARIANTS)}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--cold-boost", type=float, nargs="+", default=None, metavar="B",
                    help="also score each variant with B standard deviations of its scores added to every cold item "
                         "(items with no interaction in train): does the model rank cold items too low?")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "ablation.json"))
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    rows = []
    for ds_name in a.datasets:
        rows += run_dataset(load_named(ds_name, a.data_home, a.movielens), a.variants, a.seeds, a.cold_boost)
    report({"datasets": a.datasets, "seeds": a.seeds, "rows": rows, "summary": summarise(rows)}, a.out)


def run_dataset(ds: Dataset, variants: list[str], seeds: list[int], cold_boost: list[float] | None) -> list[dict]:
    """Each variant fitted on ``ds``'s train part and scored on its validation part, per seed."""
    split = make_split(ds)
    train, val = split.train, split.val
    users = np.unique(val.users)
    dataset = split.dataset_of(split.train_frame)
    rows: list[dict] = []
    for seed in seeds:
        for name in variants:
            t0 = time.perf_counter()
            m = FusedScorer(name, RecommenderConfig.model_validate(VARIANTS[name])).fit(
                FitContext(train, None, seed, False, dataset, split.vocabs.user.ids, split.vocabs.item.ids)
            )
            fit_seconds = time.perf_counter() - t0
            sd = float(m.scores(users).std())
            cold = torch.from_numpy(cold_items(train)).float()
            for boost in cold_boost or [0.0]:
                def score(u: np.ndarray, b: float = boost) -> torch.Tensor:
                    return m.scores(u) + b * sd * cold

                r = evaluate_topk(full_ranking_topk(score, users, train.by_user()), users, train, val)
                label = name if cold_boost is None else f"{name} + cold boost {boost:g} sd"
                rows.append({"data": ds.name, "variant": label, "seed": seed, "val_ndcg@20": r["ndcg@20"], "val_recall@20": r["recall@20"],
                             "val_cold_recall@20": r["cold_recall@20"], "best_epoch": m.best_epoch,
                             "seconds_per_epoch": m.seconds_per_epoch, "fit_seconds": fit_seconds,
                             "chosen": m.recommender.metrics.get("chosen")})
                logging.info("%s", rows[-1])
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation (ddof 1) of each variant's validation figures over its seeds."""
    out = []
    for data, name in dict.fromkeys((r.get("data"), r["variant"]) for r in rows):
        mine = [r for r in rows if r["variant"] == name and r.get("data") == data]
        row: dict = {"data": data, "variant": name, "seeds": len(mine)}
        for key in ("val_ndcg@20", "val_recall@20", "val_cold_recall@20", "best_epoch", "seconds_per_epoch"):
            vals = np.array([r[key] for r in mine], dtype=float)
            row[key] = float(vals.mean())
            row[key + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
        out.append(row)
    return out


if __name__ == "__main__":
    main()
