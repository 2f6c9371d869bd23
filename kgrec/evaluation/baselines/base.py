"""What every model in the quality benchmark offers: fit on numbered interactions, score users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from kgrec.evaluation.split import Interactions
from kgrec.fusion.stopping import EarlyStopping
from kgrec.loaders.schema import Dataset

#: the one early-stopping helper (kgrec's own model uses it too); re-exported for the baselines
__all__ = ["EarlyStopping", "FitContext", "Scorer", "validation_ndcg"]


@dataclass
class FitContext:
    """What a model may read while fitting: the interactions to fit on, and (for selection only)
    held-out validation interactions. The test set is never part of it."""

    data: Interactions
    validation: Interactions | None = None
    seed: int = 0
    progress: bool = False
    #: the same interactions as a data set (with item text, categories, keywords, facts) for
    #: content-aware models, and the ids behind the user / item numbers
    dataset: Dataset | None = None
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Scorer(Protocol):
    """A fitted model: a score for every (user, item) pair of the evaluation spaces."""

    name: str

    def fit(self, ctx: FitContext) -> Scorer: ...

    def scores(self, users: np.ndarray) -> torch.Tensor:
        """``[len(users), n_items]`` scores (higher is better)."""
        ...


def validation_ndcg(model: Scorer, ctx: FitContext, history: list[np.ndarray]) -> float:
    """NDCG@20 of ``model`` on ``ctx.validation`` (full ranking, ``history`` excluded)."""
    from kgrec.evaluation.metrics import evaluate_topk, full_ranking_topk

    assert ctx.validation is not None
    users = np.unique(ctx.validation.users)
    return evaluate_topk(full_ranking_topk(model.scores, users, history), users, ctx.data, ctx.validation)["ndcg@20"]
