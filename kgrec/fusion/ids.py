"""Ids at the edge: what the public API accepts as a user or item id (strings; an int is taken as ``str(n)``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

__all__ = ["id_list"]


def id_list(ids: object, what: str) -> list[str]:
    """``ids`` (one id or an iterable of them) as a list of strings: ids are strings, an int is taken as ``str(n)``.

    Raises:
        TypeError: any other type (a float, None, a bool, a dict …), naming ``what`` and the value found.
    """

    def one(v: object) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            return str(v)
        raise TypeError(f"{what}: ids are strings (an int is taken as str(n)); got {type(v).__name__} {v!r}")

    if isinstance(ids, (str, int, np.integer)) and not isinstance(ids, (bool, np.bool_)):
        return [one(ids)]
    if isinstance(ids, Iterable) and not isinstance(ids, (bytes, Mapping)):
        return [one(v) for v in ids]
    raise TypeError(
        f"{what}: expected an id or a list of ids (strings; an int is taken as str(n)); "
        f"got {type(ids).__name__} {ids!r}"
    )
