"""kgrec's own model (and its one-tower ablations) as a benchmark scorer.

The fused row is exactly ``Recommender(RecommenderConfig()).fit(data)``, what
``kgrec train`` does with its defaults: any selection (early stopping) happens inside
``fit`` on the data it is given, never on the benchmark's validation or test sets.
"""

from __future__ import annotations

import numpy as np
import torch

from kgrec.evaluation.baselines.base import FitContext
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.recommender import Recommender


class FusedScorer:
    def __init__(self, name: str, config: RecommenderConfig) -> None:
        self.name = name
        self.config = config
        self.best_epoch: int | None = None
        self.seconds_per_epoch = float("nan")

    def fit(self, ctx: FitContext) -> FusedScorer:
        if ctx.dataset is None or ctx.user_ids is None or ctx.item_ids is None:
            raise ValueError("the fused model needs the data set and the ids behind the numbers (FitContext.dataset)")
        cfg = self.config.model_copy(deep=True)
        cfg.train.seed = ctx.seed
        rec = Recommender(cfg).fit(ctx.dataset, progress=ctx.progress)
        unum = np.array(
            [rec.vocabs.user.number(str(u), missing="none") if str(u) in rec.vocabs.user else -1 for u in ctx.user_ids]
        )
        inum = rec.vocabs.item.numbers(np.asarray(ctx.item_ids).astype(str))
        users = torch.from_numpy(rec.arrays["users"])
        zero = torch.zeros(1, users.shape[1])
        self._users = torch.cat([users, zero])  # users the model never saw score 0 everywhere
        self._unum = torch.from_numpy(np.where(unum >= 0, unum, len(users)).astype(np.int64))
        self._items = torch.from_numpy(rec.arrays["items"])[torch.from_numpy(inum.astype(np.int64))]
        self.best_epoch = rec.metrics.get("best_epoch")
        self.seconds_per_epoch = float(rec.metrics.get("seconds_per_epoch") or float("nan"))
        self.recommender = rec
        return self

    def scores(self, users: np.ndarray) -> torch.Tensor:
        return self._users[self._unum[torch.from_numpy(users)]] @ self._items.T


def fused_config() -> RecommenderConfig:
    """The defaults of ``kgrec train``."""
    return RecommenderConfig()


def text_only_config() -> RecommenderConfig:
    """The fused model's text tower alone (BERT vectors of items and behaviour, a learned MLP)."""
    return RecommenderConfig.model_validate({"model": {"use_structure": False, "recent_window": 0}})


def structure_only_config() -> RecommenderConfig:
    """The fused model's graph tower alone (the GNN over the knowledge graph, no text anywhere)."""
    return RecommenderConfig.model_validate(
        {"model": {"use_text": False, "item_text_in_gnn": False, "recent_window": 0}}
    )
