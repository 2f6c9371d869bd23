"""The live state: a :class:`~kgrec.fusion.state.ModelState` whose user rows and histories can be rewritten and whose
users and items can grow, without changing the trained state it was copied from (:mod:`kgrec.fusion.live`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from kgrec.fusion.remap import ITEM_ARRAYS, USER_ARRAYS
from kgrec.fusion.state import ModelState

__all__ = ["LiveState"]


class LiveState(ModelState):
    """A :class:`ModelState` whose user rows and histories can be rewritten and whose users and items can grow.

    Built from a base state by :meth:`of` (the base's arrays are copied on the first write, never changed);
    :meth:`history` and :meth:`recent_weights` read the rewritten histories first.
    """

    hist_override: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]
    base_users: int
    base_items: int

    @classmethod
    def of(cls, base: ModelState) -> LiveState:
        live = cls.__new__(cls)
        live.__dict__.update(base.__dict__)
        live.arrays = {k: (v.copy() if k in USER_ARRAYS or k in ITEM_ARRAYS else v) for k, v in base.arrays.items()}
        live.titles = dict(base.titles)
        live.hist_override = {}
        live.base_users, live.base_items = len(base.vocabs.user), len(base.vocabs.item)
        live.reset_tensors()
        return live

    def reset_tensors(self) -> None:
        """Point the ranking tensors at the (possibly grown) arrays."""
        self.users_t = torch.from_numpy(self.arrays["users"])
        self.items_t = torch.from_numpy(self.arrays["items"])

    def history(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        o = self.hist_override.get(u)
        if o is not None:
            return o[0], o[1]
        if u >= self.base_users:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        return super().history(u)

    def recent_weights(self, u: int) -> np.ndarray:
        o = self.hist_override.get(u)
        if o is not None:
            return o[2].astype(np.float64)
        if u >= self.base_users:
            return np.zeros(0)
        return super().recent_weights(u)

    def has_interactions(self, i: int) -> bool:
        return i < self.base_items and super().has_interactions(i)

    def grow(self, kind: str, ids: Sequence[str], rows: dict[str, np.ndarray]) -> np.ndarray:
        """Append ``ids`` to the ``kind`` (user/item) vocabulary with their array ``rows`` (missing arrays: zeros);
        returns their numbers."""
        names = USER_ARRAYS if kind == "user" else ITEM_ARRAYS
        old = self.vocabs.of(kind)
        start = len(old)
        for name in names:
            if name not in self.arrays:
                continue
            a = self.arrays[name]
            add = rows.get(name)
            if add is None:
                add = np.zeros((len(ids), *a.shape[1:]), dtype=a.dtype)
            self.arrays[name] = np.concatenate([a, add.astype(a.dtype, copy=False)])
        self.vocabs = replace(self.vocabs, **{kind: old.extended(ids)})
        self.reset_tensors()
        return np.arange(start, start + len(ids), dtype=np.int64)
