"""EASE (Steck 2019): a closed-form item-item linear model with a zero diagonal.

``B = I - P diag(1 / diag(P))`` with ``P = (X^T X + lambda I)^-1``; ``score(u) = X_u B``. ``X^T X + lambda I`` is
symmetric positive definite, so ``P`` comes from its Cholesky factor (half the time of a general inverse, the same
matrix to float64 rounding).
"""

from __future__ import annotations

import numpy as np
import torch

from kgrec.evaluation.baselines.base import FitContext
from kgrec.evaluation.baselines.itemknn import binary_matrix


class EASE:
    name = "EASE"

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = l2

    def fit(self, ctx: FitContext) -> EASE:
        x = binary_matrix(ctx.data)
        used = torch.from_numpy(np.unique(ctx.data.items))  # items without interactions get zero rows/cols
        xs = x[:, used].double()
        g = xs.T @ xs
        g.diagonal().add_(self.l2)
        p = torch.cholesky_inverse(torch.linalg.cholesky(g))
        b = -p / p.diagonal().unsqueeze(0)
        b.fill_diagonal_(0.0)
        self._x, self._used, self._b = x, used, b.float()
        return self

    def scores(self, users: np.ndarray) -> torch.Tensor:
        xu = self._x[torch.from_numpy(users)]
        out = torch.zeros(len(users), self._x.shape[1])
        out[:, self._used] = xu[:, self._used] @ self._b
        return out
