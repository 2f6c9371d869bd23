"""Most popular items (interaction counts in the fit data)."""

from __future__ import annotations

import numpy as np
import torch

from kgrec.evaluation.baselines.base import FitContext


class Popularity:
    name = "Popularity"

    def fit(self, ctx: FitContext) -> Popularity:
        d = ctx.data
        self._counts = torch.from_numpy(np.bincount(d.items, minlength=d.n_items).astype(np.float32))
        return self

    def scores(self, users: np.ndarray) -> torch.Tensor:
        return self._counts.unsqueeze(0).expand(len(users), -1)
