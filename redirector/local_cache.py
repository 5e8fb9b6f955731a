"""The in-process cache of decoded records in front of Redis.

Entries are keyed by their Redis key (so an invalidation message's payload is the cache key),
bounded in number (least recently used out first) and expire after ``ttl`` seconds as a safety
net should an invalidation ever be missed. Unknown keys are cached as negative entries for a
shorter time so that a flood of bogus codes costs no Redis round trips.

``generation`` counts invalidations: a fetch that started before one must not store its
(possibly stale) result, which closes the read-then-invalidate race.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()  # a cached "this key does not exist"


class LocalCache(Generic[T]):
    """LRU + TTL map of Redis key -> decoded record (or :data:`MISSING`)."""

    def __init__(self, size: int, ttl: float, negative_ttl: float, *, enabled: bool = True) -> None:
        self.size = max(1, size)
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.enabled = enabled
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[str, tuple[float, T | _Missing]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> T | _Missing | None:
        """The cached value, :data:`MISSING` for a cached absence, or ``None`` when not cached."""
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry[0] < time.monotonic():
            del self._data[key]
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: str, value: T | _Missing, generation: int) -> None:
        """Store ``value`` unless the cache was invalidated since ``generation`` was read."""
        if not self.enabled or generation != self.generation:
            return
        ttl = self.negative_ttl if value is MISSING else self.ttl
        data = self._data
        data[key] = (time.monotonic() + ttl, value)
        data.move_to_end(key)
        if len(data) > self.size:
            data.popitem(last=False)

    def invalidate(self, key: str) -> None:
        self.generation += 1
        self._data.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._data.clear()
