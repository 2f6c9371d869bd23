"""Item-based nearest neighbours with cosine similarity (Sarwar et al. 2001; Deshpande & Karypis 2004).

``score(u, i) = sum over the user's items j of sim(j, i)``, where ``sim`` is the cosine of
the items' user columns, each item keeping only its ``neighbours`` most similar items.
"""

from __future__ import annotations

import numpy as np
import torch

from kgrec.evaluation.baselines.base import FitContext
from kgrec.evaluation.split import Interactions

MAX_DENSE_ITEMS = 40_000


def binary_matrix(d: Interactions) -> torch.Tensor:
    """Dense ``[n_users, n_items]`` 0/1 matrix of the interactions."""
    if d.n_items > MAX_DENSE_ITEMS:
        raise ValueError(
            f"{d.n_items} items: the dense ItemKNN/EASE baselines support at most {MAX_DENSE_ITEMS} items; "
            "evaluate on a sample of items or leave these baselines out (--models)"
        )
    x = torch.zeros(d.n_users, d.n_items)
    x[torch.from_numpy(d.users), torch.from_numpy(d.items)] = 1.0
    return x


class ItemKNN:
    name = "ItemKNN"

    def __init__(self, neighbours: int = 100) -> None:
        self.neighbours = neighbours

    def fit(self, ctx: FitContext) -> ItemKNN:
        x = binary_matrix(ctx.data)
        norms = x.sum(0).sqrt().clamp_min(1e-12)
        sim = (x.T @ x) / norms.unsqueeze(0) / norms.unsqueeze(1)
        sim.fill_diagonal_(0.0)
        if self.neighbours < sim.shape[0]:
            v, i = torch.topk(sim, self.neighbours, dim=0)  # each column keeps its top neighbours
            pruned = torch.zeros_like(sim)
            pruned.scatter_(0, i, v)
            sim = pruned
        self._x, self._sim = x, sim
        return self

    def scores(self, users: np.ndarray) -> torch.Tensor:
        return self._x[torch.from_numpy(users)] @ self._sim
