"""What every model in the quality benchmark offers: fit on numbered interactions, score users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from kgrec.evaluation.split import Interactions
from kgrec.loaders.schema import Dataset


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
