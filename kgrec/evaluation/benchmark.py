"""The quality benchmark: every model on one split, selected on validation, tested once.

For each model: choose hyperparameters (and, for iterative models, the epoch count) by
validation NDCG@20 after training on *train*; refit on *fit* = train + validation with
the choice; rank all items for every test user, items seen in *fit* excluded; score with
:func:`kgrec.evaluation.metrics.evaluate_topk`. Trained models run once per seed.
The fused model and its one-tower ablations select inside ``fit`` (early stopping on the
last 10% of the data they are given), as ``kgrec train`` does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kgrec.evaluation.baselines.base import FitContext
from kgrec.evaluation.baselines.ease import EASE
from kgrec.evaluation.baselines.gru4rec import GRU4Rec
from kgrec.evaluation.baselines.itemknn import ItemKNN
from kgrec.evaluation.baselines.lightgcn import LightGCN
from kgrec.evaluation.baselines.popularity import Popularity
from kgrec.evaluation.baselines.sasrec import SASRec
from kgrec.evaluation.beyond import beyond_accuracy, category_matrix, ild_vectors
from kgrec.evaluation.fused import FusedScorer, fused_config, structure_only_config, text_only_config
from kgrec.evaluation.metrics import evaluate_cold_only, evaluate_topk, full_ranking_topk
from kgrec.evaluation.split import EvalSplit, Interactions, make_split
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.state import similarity_vectors
from kgrec.loaders.schema import Dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """How one benchmark row is made."""

    name: str
    factory: Callable[..., Any]
    grid: Sequence[dict[str, Any]] = ({},)
    seeded: bool = True  # trained with randomness: one run per seed
    early_stopping: bool = False  # selects its epoch count on validation (then refits for that many epochs)
    uses_content: bool = False  # needs the data set (text, categories, keywords, facts)


def default_models(fused: RecommenderConfig | None = None) -> list[ModelSpec]:
    fused = fused or fused_config()
    return [
        ModelSpec("Popularity", Popularity, seeded=False),
        ModelSpec("ItemKNN", ItemKNN, grid=[{"neighbours": n} for n in (50, 200, 1000)], seeded=False),
        ModelSpec("EASE", EASE, grid=[{"l2": v} for v in (100.0, 300.0, 1000.0, 3000.0)], seeded=False),
        ModelSpec("LightGCN", LightGCN, grid=[{"lr": v} for v in (5e-3, 1e-2)], early_stopping=True),
        ModelSpec("SASRec", SASRec, grid=[{"dropout": v} for v in (0.2, 0.5)], early_stopping=True),
        ModelSpec(
            "GRU4Rec",
            GRU4Rec,
            grid=[
                {"hidden": 64, "dropout": 0.2},
                {"hidden": 64, "dropout": 0.5},
                {"hidden": 128, "dropout": 0.2, "lr": 1e-3},
            ],
            early_stopping=True,
        ),
        ModelSpec("text-only", lambda: FusedScorer("text-only", text_only_config()), uses_content=True),
        ModelSpec("structure-only", lambda: FusedScorer("structure-only", structure_only_config()), uses_content=True),
        ModelSpec("fused (kgrec train)", lambda: FusedScorer("fused (kgrec train)", fused), uses_content=True),
    ]


@dataclass
class BenchmarkResult:
    runs: pd.DataFrame  # one row per model and seed: metrics, chosen parameters, times
    selection: pd.DataFrame  # one row per model and grid point: validation NDCG@20
    split: dict[str, int] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)  # the last fitted model of each row (e.g. its Recommender)

    def summary(
        self,
        metrics: Sequence[str] = (
            "recall@20",
            "ndcg@20",
            "cold_recall@20",
            "cold_ndcg@20",
            "cold_only_recall@20",
            "cold_only_ndcg@20",
            "coverage@20",
            "ild_categories@20",
            "ild_vectors@20",
            "novelty@20",
            "long_tail@20",
            "gini@20",
        ),
    ) -> pd.DataFrame:
        """Mean and standard deviation over seeds per model (model order kept)."""
        g = self.runs.groupby("model", sort=False)
        out = g[[m for m in metrics if m in self.runs.columns]].agg(["mean", "std"])
        out.columns = [f"{m}_{s}" for m, s in out.columns]
        out["seeds"] = g.size()
        out["fit_seconds"] = g["fit_seconds"].mean()
        out["seconds_per_epoch"] = g["seconds_per_epoch"].mean()
        return out.reset_index()


def _context(
    split: EvalSplit,
    data: Interactions,
    frame: pd.DataFrame,
    validation: Interactions | None,
    seed: int,
    progress: bool,
    content: bool,
) -> FitContext:
    return FitContext(
        data=data,
        validation=validation,
        seed=seed,
        progress=progress,
        dataset=split.dataset_of(frame) if content else None,
        user_ids=split.vocabs.user.ids,
        item_ids=split.vocabs.item.ids,
    )


def _evaluate(
    model: Any,
    data: Interactions,
    held_out: Interactions,
    k: int,
    categories: np.ndarray | None = None,
    tops: list[np.ndarray] | None = None,
) -> dict[str, float]:
    users = np.unique(held_out.users)
    top = full_ranking_topk(model.scores, users, data.by_user(), k)
    if tops is not None:
        tops.append(top)
    beyond = beyond_accuracy(top, data, k, categories=categories)  # ild_vectors: filled in by run_benchmark
    return {
        **evaluate_topk(top, users, data, held_out, k),
        **evaluate_cold_only(model.scores, data, held_out, k),
        **beyond,
    }


def fused_item_vectors(models: dict[str, Any], split: EvalSplit) -> tuple[str, np.ndarray] | None:
    """``(row name, [n_items, d] item vectors by the split's item numbers)`` of the fused row of a run (the
    first model with a ``recommender``), the vectors every row's ``ild_vectors`` is measured with; None without one."""
    for name, m in models.items():
        rec = getattr(m, "recommender", None)
        if rec is None or not name.startswith("fused"):
            continue
        inum = rec.vocabs.item.numbers(np.asarray(split.vocabs.item.ids).astype(str), missing="none")
        vecs = similarity_vectors(rec.arrays)  # v_i, the re-ranker's "alike"
        out = np.zeros((len(inum), vecs.shape[1]), dtype=np.float32)
        out[inum >= 0] = vecs[inum[inum >= 0]]
        return name, out
    return None


def run_benchmark(
    ds: Dataset | EvalSplit,
    models: Sequence[ModelSpec] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    k: int = 20,
    progress: bool = False,
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> BenchmarkResult:
    """Run the benchmark on ``ds`` (or on a ready split). Nothing here lets a model see the test set
    before its final, single evaluation."""
    split = ds if isinstance(ds, EvalSplit) else make_split(ds)
    train, val, fit, test = split.train, split.val, split.fit, split.test
    runs, selection = [], []
    fitted: dict[str, Any] = {}
    categories = category_matrix(split.dataset.item_categories, split.vocabs)
    tops: list[np.ndarray] = []  # the test lists of each run, for ild_vectors once the fused vectors exist
    for spec in models if models is not None else default_models():
        chosen: dict[str, Any] = {}
        epochs: int | None = None
        if len(spec.grid) > 1 or spec.early_stopping:
            best = -1.0
            for params in spec.grid:
                t0 = time.perf_counter()
                ctx = _context(split, train, split.train_frame, val, 0, progress, spec.uses_content)
                m = spec.factory(**params).fit(ctx)
                score = getattr(m, "val_ndcg", None)
                if score is None or not np.isfinite(score):
                    score = _evaluate(m, train, val, k)[f"ndcg@{k}"]
                row = {"model": spec.name, **params, "val_ndcg@20": score, "seconds": time.perf_counter() - t0}
                if spec.early_stopping:
                    row["best_epoch"] = m.best_epoch
                selection.append(row)
                log.info("selection %s %s: val ndcg@%d %.4f", spec.name, params, k, score)
                if score > best:
                    best, chosen, epochs = score, dict(params), getattr(m, "best_epoch", None)
        for seed in seeds if spec.seeded else seeds[:1]:
            t0 = time.perf_counter()
            params = dict(chosen)
            if spec.early_stopping and epochs is not None:
                params["epochs"] = epochs
            ctx = _context(split, fit, split.fit_frame, None, seed, progress, spec.uses_content)
            m = spec.factory(**params).fit(ctx)
            fit_seconds = time.perf_counter() - t0
            metrics = _evaluate(m, fit, test, k, categories, tops)  # the only place the test set is read
            row = {
                "model": spec.name,
                "seed": seed,
                **metrics,
                "params": repr(params) if params else "",
                "fit_seconds": fit_seconds,
                "seconds_per_epoch": getattr(m, "seconds_per_epoch", float("nan")),
                "epochs": params.get("epochs", getattr(m, "best_epoch", None)),
            }
            runs.append(row)
            fitted[spec.name] = m
            log.info(
                "%s seed %d: recall@%d %.4f ndcg@%d %.4f (%.0f s)",
                spec.name,
                seed,
                k,
                metrics[f"recall@{k}"],
                k,
                metrics[f"ndcg@{k}"],
                fit_seconds,
            )
            if on_run is not None:
                on_run(row)
    vectors = fused_item_vectors(fitted, split)
    for row, top in zip(runs, tops, strict=True):
        row[f"ild_vectors@{k}"] = ild_vectors(top, vectors[1], k) if vectors is not None else float("nan")
        row["ild_vectors_of"] = vectors[0] if vectors is not None else ""
    if vectors is None:
        log.info("no fused row in this run: ild_vectors@%d is NaN (it is measured with the fused item vectors)", k)
    sizes = {
        "users": int(split.vocabs.user.__len__()),
        "items": len(split.vocabs.item),
        "train": len(train),
        "validation": len(val),
        "test": len(test),
        "test_users": int(len(np.unique(test.users))),
    }
    return BenchmarkResult(pd.DataFrame(runs), pd.DataFrame(selection), sizes, fitted)
