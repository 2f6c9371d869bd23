"""Fit the fused model on MovieLens's *train* part and score it on *validation* (the test set is never read): the
scaffolding the validation-only ablations (fine-tuning, encoder precision) share."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from kgrec import loaders
from kgrec.evaluation.baselines.base import FitContext
from kgrec.evaluation.fused import FusedScorer
from kgrec.evaluation.metrics import evaluate_cold_only, evaluate_topk, full_ranking_topk
from kgrec.evaluation.split import make_split
from kgrec.fusion.config import RecommenderConfig


@dataclass
class ValidationFit:
    """One fit: the fitted scorer, its fit time and its validation figures (``val_ndcg@20``, ``val_recall@20``,
    ``val_cold_recall@20``, ``val_cold_only_recall@20``, ``cold_only_random_recall@20``, ``best_epoch``)."""

    scorer: FusedScorer
    fit_seconds: float
    figures: dict[str, Any]


class MovieLensValidation:
    """MovieLens latest-small under ``root``, split once (the benchmark's chronological split)."""

    def __init__(self, root: str) -> None:
        self.split = make_split(loaders.movielens(root))
        self.users = np.unique(self.split.val.users)
        self.dataset = self.split.dataset_of(self.split.train_frame)

    def fit(self, name: str, cfg: RecommenderConfig, seed: int, *, cold_only: bool = False) -> ValidationFit:
        """Fit ``cfg`` with ``seed`` on train; Recall/NDCG@20 on validation (and the cold-only ranking with
        ``cold_only``)."""
        sp = self.split
        t0 = time.perf_counter()
        m = FusedScorer(name, cfg).fit(
            FitContext(sp.train, None, seed, False, self.dataset, sp.vocabs.user.ids, sp.vocabs.item.ids)
        )
        seconds = time.perf_counter() - t0
        r = evaluate_topk(full_ranking_topk(m.scores, self.users, sp.train.by_user()), self.users, sp.train, sp.val)
        figures: dict[str, Any] = {
            "val_ndcg@20": r["ndcg@20"],
            "val_recall@20": r["recall@20"],
            "val_cold_recall@20": r["cold_recall@20"],
            "best_epoch": m.best_epoch,
        }
        if cold_only:
            c = evaluate_cold_only(m.scores, sp.train, sp.val)
            figures["val_cold_only_recall@20"] = c["cold_only_recall@20"]
            figures["cold_only_random_recall@20"] = c["cold_only_random_recall@20"]
        return ValidationFit(m, seconds, figures)
