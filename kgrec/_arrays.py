"""Array helpers shared by the packages.

:func:`distinct` is ``np.unique`` of a 1-D integer array by sorting: numpy 2.4's default for that call (hashing)
took 4.1 s for 3 million int64 keys here, against 0.04 s for a sort (the explained export's joins build millions).
"""

from __future__ import annotations

import numpy as np

__all__ = ["distinct"]


def distinct(x: np.ndarray) -> np.ndarray:
    """The distinct values of the 1-D array ``x``, ascending (what ``np.unique(x)`` returns)."""
    y = np.sort(x)
    if len(y) < 2:
        return y
    keep = np.empty(len(y), dtype=bool)
    keep[0] = True
    np.not_equal(y[1:], y[:-1], out=keep[1:])
    return y[keep]
