"""Array helpers shared by the packages: set operations on integer keys.

:func:`member` tells which keys are in a sorted key set (a bitmap when the key space is small); :func:`ranges`
concatenates index ranges; :func:`distinct` is ``np.unique`` of a 1-D integer array by sorting: numpy 2.4's default
for that call (hashing) took 4.1 s for 3 million int64 keys here, against 0.04 s for a sort (the explained export's
joins build millions).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BITMAP", "distinct", "member", "ranges"]

#: largest key space :func:`member` marks in a bitmap by default (bytes); past it, a binary search
BITMAP = 64_000_000


def distinct(x: np.ndarray) -> np.ndarray:
    """The distinct values of the 1-D array ``x``, ascending (what ``np.unique(x)`` returns)."""
    y = np.sort(x)
    if len(y) < 2:
        return y
    keep = np.empty(len(y), dtype=bool)
    keep[0] = True
    np.not_equal(y[1:], y[:-1], out=keep[1:])
    return y[keep]


def member(keys: np.ndarray, target: np.ndarray, size: int, bitmap: int = BITMAP) -> np.ndarray:
    """Whether each of ``keys`` is in the ascending ``target`` (every key in ``[0, size)``): a bitmap when the key
    space is at most ``bitmap`` bytes, else a binary search."""
    if len(target) == 0:
        return np.zeros(len(keys), dtype=bool)
    if size <= bitmap:
        mark = np.zeros(size, dtype=bool)
        mark[target] = True
        return mark[keys]
    pos = np.minimum(np.searchsorted(target, keys), len(target) - 1)
    return target[pos] == keys


def ranges(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start[q], start[q] + count[q])``."""
    return np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count - start, count)
