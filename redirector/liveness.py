"""Liveness: tell a Redis client that is stuck from a Redis that is down.

The edge's Redis clients (the data store and the invalidation subscriber) reconnect by
themselves, backing off up to 2 s between attempts. One that has been without a connection for
longer than ``bound`` seconds while fresh connections to the same address have been getting
their ``PONG`` for :data:`GRACE` seconds (longer than any backoff) will not come back by itself:
Redis answers others, so restarting the process is what helps, and ``/healthz`` says so with a
503. While Redis answers nobody the process is healthy (restarting it would not bring Redis
back, and its local cache still serves): that is readiness's business (``/readyz``).

A check costs a few attribute reads while every client is connected; while one is not, at most
one probe connection per :data:`PROBE_EVERY` seconds, however often ``/healthz`` is asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from redirector.redis_url import RedisAddress
from redirector.resp.client import REDIS_ERRORS, RespConnectionError, RespError, open_connection, pack

log = logging.getLogger(__name__)

PROBE_EVERY = 1.0  # seconds a probe's answer stands
PROBE_TIMEOUT = 1.0
GRACE = 3.0  # seconds Redis must have answered before a client still without a connection is stuck
AddressKey = tuple[str | None, str, int]


@runtime_checkable
class Stallable(Protocol):
    """A Redis client that can say how long it has been without a connection."""

    def stalled(self, bound: float) -> list[RedisAddress]:
        """The addresses it has been unable to reach for over ``bound`` seconds."""
        ...


async def answers(address: RedisAddress, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a new connection to ``address`` completes its handshake and gets ``PONG``."""
    try:
        protocol = await open_connection(address, timeout=timeout, name="linkedge-edge-probe")
    except (RespConnectionError, RespError):
        return False
    try:
        return bool(await asyncio.wait_for(protocol.send(pack("PING")), timeout) == b"PONG")
    except (*REDIS_ERRORS, TimeoutError):
        return False
    finally:
        protocol.close()


class Liveness:
    """``await liveness.wedged()``: is a client stuck past ``bound`` while Redis answers? (0 = never)."""

    def __init__(self, bound: float, clients: Sequence[object]) -> None:
        self.bound = bound
        self.clients = [c for c in clients if isinstance(c, Stallable)]  # a swapped-in store may not say
        self._probe: asyncio.Task[None] | None = None
        self._probed_at = 0.0
        self._answering: dict[AddressKey, float] = {}  # address -> since when its probes succeed
        self._wedged = False

    def _stalled(self, bound: float) -> dict[AddressKey, RedisAddress]:
        return {(a.path, a.host, a.port): a for c in self.clients for a in c.stalled(bound)}

    async def wedged(self) -> bool:
        if self.bound <= 0:
            return False
        down = self._stalled(0.0)
        if not down:
            self._answering.clear()
            self._wedged = False
            return False
        probe = self._probe
        if probe is None or (probe.done() and time.monotonic() - self._probed_at > PROBE_EVERY):
            probe = self._probe = asyncio.create_task(self._check(down))
        await asyncio.shield(probe)
        now = time.monotonic()
        stuck = [a for key, a in self._stalled(self.bound).items() if now - self._answering.get(key, now) >= GRACE]
        if stuck and not self._wedged:
            where = ", ".join(a.path or f"{a.host}:{a.port}" for a in stuck)
            log.error(
                "a Redis client has had no connection for over %g s while %s answers: /healthz fails", self.bound, where
            )
        self._wedged = bool(stuck)
        return self._wedged

    async def _check(self, down: dict[AddressKey, RedisAddress]) -> None:
        results = await asyncio.gather(*(answers(a) for a in down.values()))
        now = self._probed_at = time.monotonic()
        answering = self._answering
        for key, ok in zip(down, results, strict=True):
            if not ok:
                answering.pop(key, None)
            else:
                answering.setdefault(key, now)
        for key in [k for k in answering if k not in down]:
            del answering[key]
