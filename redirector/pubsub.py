"""The invalidation subscriber: drops changed keys from the in-process cache.

Every API write publishes the Redis key it changed on ``invalidation_channel(prefix)``. Each
edge process holds one subscriber connection. Messages published while it was disconnected are
lost, so every (re)subscription calls ``on_reset`` and the edge clears its whole local cache.
A silent half-open connection is caught by a PING every ``ping_interval`` seconds.

In a Redis Cluster, classic PUBLISH is broadcast to every node over the cluster bus, so one
subscription on any node hears every write. The subscriber connects to the first candidate node
(the current masters, from ``addresses``, then the URL's seeds) and moves on to the next one
after every failed attempt or lost connection, so a dead node is left behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from redirector.redis_url import RedisAddress, cluster_seeds, is_cluster_url
from redirector.resp.client import (
    RespConnectionError,
    RespError,
    RespProtocol,
    backoff_delays,
    cancel,
    open_connection,
    pack,
)

log = logging.getLogger(__name__)


class Subscriber:
    """Subscribes to one channel, reconnecting with backoff until closed."""

    def __init__(
        self,
        url: str,
        channel: str,
        on_message: Callable[[bytes], None],
        on_reset: Callable[[], None],
        *,
        timeout: float = 1.0,
        ping_interval: float = 5.0,
        addresses: Callable[[], Sequence[RedisAddress]] | None = None,
    ) -> None:
        self.seeds = cluster_seeds(url) if is_cluster_url(url) else [RedisAddress.from_url(url)]
        self.address = self.seeds[0]  # the node of the current (or last) subscription
        self._discover = addresses
        self._turn = 0
        self.channel = channel.encode()
        self.on_message = on_message
        self.on_reset = on_reset
        self.timeout = timeout
        self.ping_interval = ping_interval
        self.subscribed = asyncio.Event()
        self.resets = 0
        self._last_data = 0.0
        self._task: asyncio.Task[None] | None = None
        self._protocol: RespProtocol | None = None
        self._down_since: float | None = None  # monotonic time since when it is not subscribed
        self._closed = False

    def stalled(self, bound: float) -> list[RedisAddress]:
        """``[address]`` when not subscribed for over ``bound`` seconds (or the loop has died)."""
        since = self._down_since
        if since is None or self._closed or time.monotonic() - since <= bound:
            return []
        return [self.address]

    async def start(self, wait: float = 2.0) -> None:
        """Start the background loop and wait (bounded) for the first subscription."""
        self._down_since = time.monotonic()
        self._task = asyncio.create_task(self._run())
        self._task.add_done_callback(self._stopped)
        try:
            await asyncio.wait_for(self.subscribed.wait(), wait)
        except TimeoutError:
            log.warning("invalidation subscriber not connected yet; local cache stays empty until it is")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = backoff_delays()
        attempt = 0
        while not self._closed:
            await asyncio.sleep(delay(attempt))
            lost = asyncio.Event()
            self.address = self._candidate()
            try:
                protocol = await open_connection(
                    self.address,
                    timeout=self.timeout,
                    name="linkedge-edge-sub",
                    on_lost=_setter(lost),
                )
            except (RespConnectionError, RespError) as e:
                attempt += 1
                self._turn += 1
                if attempt == 1:
                    log.warning("invalidation subscriber cannot connect: %s", e)
                continue
            attempt = 0
            self._protocol = protocol
            self._last_data = loop.time()
            protocol.subscribe_mode(self._on_push)
            protocol.write(pack("SUBSCRIBE", self.channel))
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), self.ping_interval)
                except TimeoutError:
                    if loop.time() - self._last_data > 2 * self.ping_interval + self.timeout:
                        protocol.abort(RespConnectionError("invalidation subscriber stopped answering"))
                    else:
                        protocol.write(pack("PING"))
            self._protocol = None
            self._turn += 1
            if self.subscribed.is_set():
                log.warning("invalidation subscriber disconnected; reconnecting")
                self._down_since = time.monotonic()
            self.subscribed.clear()

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """The loop ends only on :meth:`aclose`; anything else leaves the edge deaf to invalidations."""
        if not self._closed:
            if not task.cancelled() and task.exception() is not None:
                log.error("invalidation subscriber stopped", exc_info=task.exception())
            self.subscribed.clear()
            if self._down_since is None:
                self._down_since = time.monotonic()

    def _candidate(self) -> RedisAddress:
        """The node to try next: candidates in turn (the only one, for a single Redis)."""
        found = [*(self._discover() if self._discover is not None else ()), *self.seeds]
        unique = list({(a.path, a.host, a.port): a for a in found}.values())
        return unique[self._turn % len(unique)]

    def _on_push(self, reply: Any) -> None:
        self._last_data = asyncio.get_running_loop().time()
        if not isinstance(reply, list) or not reply:
            return
        kind = reply[0]
        if kind == b"message" and len(reply) == 3:
            self.on_message(reply[2])
        elif kind == b"subscribe":
            # Anything published before this point may have been missed.
            self.resets += 1
            self.on_reset()
            self.subscribed.set()
            self._down_since = None

    async def aclose(self) -> None:
        self._closed = True
        await cancel(self._task)
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None


def _setter(event: asyncio.Event) -> Callable[[RespProtocol, Exception | None], None]:
    def on_lost(protocol: RespProtocol, exc: Exception | None) -> None:
        event.set()

    return on_lost
