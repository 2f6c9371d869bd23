"""Stable id <-> number vocabularies: *id* is the external key, *number* the tensor row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, overload

import numpy as np
import pandas as pd

from kgrec.errors import UnknownIdError


class Vocab:
    """A sorted, immutable vocabulary of string ids.

    Numbers are positions in the sorted id list, so equal id sets always give
    equal numbers, whichever store the ids came from.
    """

    def __init__(self, kind: str, ids: Iterable[str]) -> None:
        self.kind = kind
        arr = np.array(sorted(set(map(str, ids))), dtype=object)
        self._ids = arr
        self._index = pd.Index(arr)
        self._lookup = {k: i for i, k in enumerate(arr.tolist())}

    def extended(self, ids: Iterable[str]) -> Vocab:
        """This vocabulary with ``ids`` it does not hold appended after its own, in the given order: every number
        it gives stays the same (a live model grows its users and items this way, kgrec.fusion.live)."""
        new = [i for i in dict.fromkeys(map(str, ids)) if i not in self._lookup]
        out = Vocab.__new__(Vocab)
        out.kind = self.kind
        out._ids = np.array([*self._ids.tolist(), *new], dtype=object)
        out._index = pd.Index(out._ids)
        out._lookup = {k: i for i, k in enumerate(out._ids.tolist())}
        return out

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, ident: object) -> bool:
        return str(ident) in self._lookup

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    @overload
    def number(self, ident: str, missing: Literal["error"] = "error") -> int: ...
    @overload
    def number(self, ident: str, missing: Literal["none"]) -> int | None: ...
    def number(self, ident: str, missing: str = "error") -> int | None:
        """The number of ``ident``; ``missing="error"`` raises, ``"none"`` returns None."""
        n = self._lookup.get(str(ident))
        if n is None and missing == "error":
            raise UnknownIdError(self.kind, ident)
        return n

    def numbers(self, idents: Sequence[str] | pd.Series | np.ndarray, missing: str = "error") -> np.ndarray:
        """Numbers of many ids (``-1`` for unknown ones when ``missing="none"``)."""
        pos = self._index.get_indexer(pd.Index(np.asarray(idents, dtype=object).astype(str)))
        if missing == "error" and (pos < 0).any():
            bad = np.asarray(idents, dtype=object)[pos < 0][0]
            raise UnknownIdError(self.kind, bad)
        return pos.astype(np.int64)

    def id(self, number: int) -> str:
        return str(self._ids[number])

    def to_list(self) -> list[str]:
        return self._ids.tolist()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.kind == other.kind and np.array_equal(self._ids, other._ids)

    def __hash__(self) -> int:  # pragma: no cover - vocabs are not used as keys
        return hash((self.kind, len(self)))

    def __repr__(self) -> str:
        return f"Vocab({self.kind!r}, {len(self)} ids)"
