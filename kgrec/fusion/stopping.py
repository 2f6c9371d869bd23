"""Early stopping on a validation score: one helper for kgrec's model and the benchmark's baselines."""

from __future__ import annotations

import torch


class EarlyStopping:
    """Keeps the best weights by a validation score (higher is better, e.g. NDCG@20) and says when
    ``patience`` validations in a row brought no gain."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = -1.0
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.bad = 0

    def step(self, epoch: int, score: float, module: torch.nn.Module) -> bool:
        """Record one validation; True when training should stop."""
        if score > self.best:
            self.best, self.best_epoch, self.bad = score, epoch, 0
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self, module: torch.nn.Module) -> None:
        """Load the best weights seen into ``module`` (nothing when no validation improved)."""
        if self.state is not None:
            module.load_state_dict(self.state)
