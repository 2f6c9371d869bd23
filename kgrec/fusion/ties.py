"""Ties in time: interactions of one user that share a timestamp form a *tie group*, never an order.

The rule (docs/evaluation.md, "Ties in time"):

- **Newest, with ties.** A user's interactions are ordered by timestamp only. The items of one tie group
  share the positions they cover: a group of ``g`` items that follows ``n`` strictly newer interactions covers
  the newest-first positions ``n … n+g-1``, and any weight given to those positions is split equally among
  its ``g`` items (the recent-interest profile), or every item gets the mean position ``n + (g-1)/2``
  (the recency weights of graph edges).
- **Causal prefixes.** The items before an interaction are the user's interactions with a strictly earlier
  timestamp: items of the same timestamp never predict each other.
- **The internal validation split never cuts a tie group** (:func:`holdout_newest_groups`).

Rows are put into a canonical order, ``(user number, timestamp, item number)``, before anything is
computed, so neither the file order nor the spelling of ids reaches the model: the item numbers come
from the items table (vocabulary), not from the interactions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kgrec.loaders import schema as S


def canonical_order(users: np.ndarray, times: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The permutation that sorts interactions by ``(user, time, item)`` numbers."""
    return np.lexsort((items, times, users))


def group_bounds(users: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` of the tie group of every row of interactions already sorted by ``(user, time)``:
    rows ``start[p] … end[p]-1`` share row ``p``'s user and timestamp."""
    n = len(users)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    new = np.r_[True, (users[1:] != users[:-1]) | (times[1:] != times[:-1])]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], n]
    gid = np.cumsum(new) - 1
    return starts[gid].astype(np.int64), ends[gid].astype(np.int64)


def recency_weights(users: np.ndarray, times: np.ndarray, half_life: float) -> np.ndarray:
    """``0.5 ** (position_from_newest / half_life)`` per interaction (any order), where the items of one
    tie group share their mean position ``n + (g - 1) / 2`` (``n`` strictly newer interactions of the user,
    ``g`` in the group); all 1.0 when ``half_life <= 0``."""
    n = len(users)
    if half_life <= 0 or n == 0:
        return np.ones(n, dtype=np.float64)
    order = np.lexsort((times, users))
    u, t = users[order], times[order]
    gs, ge = group_bounds(u, t)
    user_end = np.searchsorted(u, u, side="right")
    newer = user_end - ge  # interactions of the user strictly newer than the group
    pos = newer + (ge - gs - 1) / 2.0
    out = np.empty(n, dtype=np.float64)
    out[order] = np.power(0.5, pos / half_life)
    return out


def holdout_newest_groups(
    interactions: pd.DataFrame, fraction: float, min_interactions: int = 3
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out about the last ``fraction`` of each user's history, whole tie groups only.

    A group is held out when more than half of it lies among the user's newest ``max(1, round(n *
    fraction))`` interactions; a user keeps at least one group in the kept part, and users with fewer than
    ``min_interactions`` interactions keep everything. Independent of row order and of how ids sort.
    Returns ``(kept, held_out)`` (each sorted by user, time, item).
    """
    if fraction <= 0 or interactions.empty:
        return interactions, interactions.iloc[:0]
    df = interactions.sort_values([S.USER, S.TIMESTAMP, S.ITEM], kind="stable").reset_index(drop=True)
    u = pd.factorize(df[S.USER])[0]
    t = df[S.TIMESTAMP].to_numpy(np.int64)
    gs, ge = group_bounds(u, t)
    user_start = np.searchsorted(u, u, side="left")
    user_end = np.searchsorted(u, u, side="right")
    n = user_end - user_start
    n_out = np.maximum(1, np.round(n * fraction)).astype(np.int64)
    newer = user_end - ge
    out = (n >= min_interactions) & (newer + (ge - gs) / 2.0 < n_out) & (gs > user_start)
    return df[~out].reset_index(drop=True), df[out].reset_index(drop=True)


@dataclass
class Window:
    """The newest items before some cut, per row, tie groups kept whole (see :func:`window`).

    ``idx[b, k]`` is an item number (``mask`` False on padding); its tie group covers the newest-first
    positions ``lo[b, k] … hi[b, k]-1`` (``hi - lo`` items; positions at or past the window get no weight).
    """

    idx: torch.Tensor
    mask: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    def __len__(self) -> int:
        return int(self.idx.shape[0])


def window(seq: np.ndarray, gs: np.ndarray, ge: np.ndarray, start: np.ndarray, end: np.ndarray, size: int) -> Window:
    """The items ``seq[start:end]`` of each row whose tie group starts within the newest ``size`` positions
    before ``end`` (``end`` a group boundary; ``gs``/``ge`` the group bounds of ``seq``), newest first."""
    b = len(start)
    if b == 0 or size <= 0 or len(seq) == 0:
        z = torch.zeros((b, 0), dtype=torch.long)
        return Window(z, torch.zeros((b, 0), dtype=torch.bool), z.clone(), z.clone())
    # a group that starts inside the window may reach past it: width = size + the largest group - 1
    width = size + int((ge - gs).max()) - 1
    pos = end[:, None] - 1 - np.arange(width)[None, :]
    pc = np.clip(pos, 0, None)
    lo = end[:, None] - ge[pc]
    mask = (pos >= start[:, None]) & (lo < size)
    used = int(mask.sum(1).max()) if b else 0
    mask, pc, lo = mask[:, :used], pc[:, :used], lo[:, :used]
    hi = end[:, None] - gs[pc]
    idx = np.where(mask, seq[pc], 0)
    return Window(
        torch.from_numpy(idx.astype(np.int64)),
        torch.from_numpy(mask),
        torch.from_numpy(np.where(mask, lo, 0).astype(np.int64)),
        torch.from_numpy(np.where(mask, hi, 1).astype(np.int64)),
    )


def window_share(win: Window, size: int) -> np.ndarray:
    """``[B, W]`` weight of each item of ``win`` when each of the newest ``size`` positions weighs 1: a tie group
    shares the positions it covers inside the window equally (0 on padding), so no order inside a group counts."""
    lo, hi, mask = win.lo.numpy(), win.hi.numpy(), win.mask.numpy()
    inside = np.clip(np.minimum(hi, size) - lo, 0, None)
    return np.where(mask, inside / np.maximum(hi - lo, 1), 0.0).astype(np.float32)
