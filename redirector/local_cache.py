"""The in-process cache of decoded records in front of Redis.

Entries are keyed by their Redis key (so an invalidation message's payload is the cache key),
bounded in number (least recently used out first) and expire after ``ttl`` seconds as a safety
net should an invalidation ever be missed. Unknown keys are cached as negative entries for a
shorter time so that a flood of bogus codes costs no Redis round trips.

``generation`` counts invalidations: a fetch that started before one must not store its
(possibly stale) result, which closes the read-then-invalidate race.

:meth:`demote` is for a moment when every entry may be stale (invalidation messages may have
been missed): the entries stop being served as they are, but are kept aside until their own
expiry. A lookup goes to Redis again; only when Redis cannot answer does the caller fall back
on :meth:`stale`. So a working cache is never thrown away before Redis can refill it.
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
        # Demoted entries: served only while Redis cannot be asked, until their own expiry.
        self._stale: OrderedDict[str, tuple[float, T | _Missing]] = OrderedDict()
        self._stale_until = 0.0

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
        now = time.monotonic()
        data = self._data
        data[key] = (now + ttl, value)
        data.move_to_end(key)
        if len(data) > self.size:
            data.popitem(last=False)
        if self._stale:
            if now > self._stale_until:
                self._stale = OrderedDict()  # every demoted entry has expired
            else:
                self._stale.pop(key, None)  # refilled from Redis

    def stale(self, key: str) -> T | _Missing | None:
        """A demoted entry for ``key`` (not yet expired), for when Redis cannot be asked; else ``None``."""
        entry = self._stale.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._stale[key]
            return None
        return entry[1]

    def demote(self) -> None:
        """Every entry may be stale: ask Redis again for each, keeping the entries for :meth:`stale`.

        Entries demoted earlier and not refilled since stay too (a second resubscribe while Redis
        still cannot be asked must not lose them); the newer entry wins, the oldest go past ``size``.
        """
        self.generation += 1
        if not self._data:
            return
        stale = self._stale
        stale.update(self._data)
        while len(stale) > self.size:
            stale.popitem(last=False)
        self._stale_until = time.monotonic() + max(self.ttl, self.negative_ttl)
        self._data = OrderedDict()

    def invalidate(self, key: str) -> None:
        self.generation += 1
        self._data.pop(key, None)
        self._stale.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._data.clear()
        self._stale.clear()
