"""A small thread-safe LRU cache for computed answers."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LRUCache(Generic[V]):
    """Least-recently-used cache of at most ``size`` entries (``size=0``: keeps nothing)."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"size={size}: expected 0 or more entries")
        self.size = size
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: V) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def peek(self, key: Hashable) -> V | None:
        """The value of ``key`` without counting a hit or a miss and without moving it up."""
        with self._lock:
            return self._data.get(key)

    def discard(self, key: Hashable, value: V) -> None:
        """Remove ``key`` if it still holds ``value`` (a value put since by another thread stays)."""
        with self._lock:
            if self._data.get(key) is value:
                del self._data[key]

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
