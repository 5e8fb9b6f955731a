"""A small auto-pipelining Redis client for the edge's hot path.

Every command issued during one event-loop tick is written to the socket in one ``write``
(scheduled with ``call_soon``), and replies are matched to callers in FIFO order, the way
RESP pipelining works. Under concurrency that turns N awaits into one syscall each way, which
is what makes a cache miss cheap; redis-py's asyncio client does a round trip per command.

The client reconnects by itself with backoff; while it is down, commands fail fast with
:class:`RespConnectionError` instead of queueing, so the edge can answer from its own cache.
A command that gets no reply within ``timeout`` aborts the connection (a reply that came late
would be matched to the wrong caller otherwise) and fails everything pending on it.

For a Redis Cluster, :class:`redirector.resp.cluster.ClusterRespClient` holds one of these per master.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

import hiredis

from redirector.redis_url import RedisAddress

log = logging.getLogger(__name__)

Arg = str | bytes | int | float


def pack(*args: Arg) -> bytes:
    """One command in RESP (hiredis's encoder; its stubs mistype the argument tuple)."""
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]
    return packed


class RespError(Exception):
    """An error reply from the server (``-ERR ...``)."""


class RespConnectionError(ConnectionError):
    """No usable connection: refused, lost, or in backoff after a failure."""


class RespTimeoutError(TimeoutError):
    """The server did not answer within the command timeout."""


CANCEL_RETRY = 0.2  # seconds between cancellations of a task that has not stopped yet

# Everything a Redis call can raise; a caller that must not fail catches exactly these.
REDIS_ERRORS = (RespError, RespConnectionError, RespTimeoutError, OSError)


class Store(Protocol):
    """What the edge needs from a Redis client; other clients can be wrapped to fit (benchmarks)."""

    async def get(self, key: str) -> bytes | None: ...

    async def execute(self, *args: Arg) -> Any: ...

    async def aclose(self) -> None: ...


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task (if any) and wait until it has stopped.

    The cancellation is repeated until the task ends: Python 3.11's ``asyncio.wait_for`` drops
    one that arrives just as the awaited operation finishes (a refused connect, say), and a
    reconnect loop that lost it would keep the shutdown waiting for good.
    """
    if task is None or task.done():
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_RETRY)
    if not task.cancelled():
        task.result()  # its own exception, if it ended with one


class RespProtocol(asyncio.Protocol):
    """One connection: a write buffer flushed once per tick and a FIFO of reply futures.

    With ``on_push`` set, the connection is a subscriber: every reply goes to the callback.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        on_lost: Callable[[RespProtocol, Exception | None], None] | None = None,
        on_push: Callable[[Any], None] | None = None,
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._on_lost = on_lost
        self._on_push = on_push
        self._reader = hiredis.Reader(replyError=RespError)
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._deadlines: deque[float] = deque()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._transport: asyncio.Transport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._overdue: asyncio.Future[Any] | None = None
        self._abort_reason: Exception | None = None
        self.closed = False
        self.writes = 0  # socket writes, to see the pipelining at work

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self._watchdog = self._loop.call_later(self._timeout / 4, self._check_deadlines)

    def send(self, payload: bytes) -> asyncio.Future[Any]:
        """Queue one packed command; the future resolves with its reply."""
        if self.closed:
            raise RespConnectionError("connection closed")
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending.append(fut)
        self._deadlines.append(self._loop.time() + self._timeout)
        self.write(payload)
        return fut

    def subscribe_mode(self, on_push: Callable[[Any], None]) -> None:
        """From now on every reply goes to ``on_push`` (after SUBSCRIBE, replies are pushes)."""
        self._on_push = on_push

    def write(self, payload: bytes) -> None:
        """Queue bytes without expecting a reply (subscriber commands answer through ``on_push``)."""
        self._out.append(payload)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._transport is None or self.closed:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self.writes += 1
        self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as e:
                self.abort(RespConnectionError(f"protocol error: {e}"))
                return
            if reply is False:
                return
            if self._on_push is not None:
                self._on_push(reply)
                continue
            if not self._pending:
                self.abort(RespConnectionError("reply without a pending command"))
                return
            fut = self._pending.popleft()
            self._deadlines.popleft()
            if fut.done():  # the caller was cancelled; the reply still had to be consumed
                continue
            if isinstance(reply, RespError):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    def _check_deadlines(self) -> None:
        self._watchdog = None
        if self.closed:
            return
        interval = self._timeout / 4
        if self._deadlines and self._deadlines[0] < self._loop.time():
            head = self._pending[0]
            if head is self._overdue:
                self.abort(RespTimeoutError(f"no reply from Redis within {self._timeout}s"))
                return
            # A blocked event loop looks like a slow server: let it poll the socket once more
            # before giving up, so a reply already waiting in the kernel buffer still counts.
            self._overdue = head
            interval = min(interval, 0.01)
        self._watchdog = self._loop.call_later(interval, self._check_deadlines)

    def abort(self, reason: Exception) -> None:
        self._abort_reason = reason
        if self._transport is not None:
            self._transport.abort()
        else:
            self.connection_lost(reason)

    def detach(self) -> None:
        """Close without telling the owner (a connection that never became usable)."""
        self._on_lost = None
        self.close()
        if self._transport is None:
            self.connection_lost(None)

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._abort_reason = RespConnectionError("client closed")
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        reason = self._abort_reason or RespConnectionError(f"connection lost: {exc or 'closed by server'}")
        while self._pending:
            fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(reason)
        self._deadlines.clear()
        if self._on_lost is not None:
            self._on_lost(self, exc)


async def open_connection(
    address: RedisAddress,
    *,
    timeout: float,
    name: str,
    on_lost: Callable[[RespProtocol, Exception | None], None] | None = None,
) -> RespProtocol:
    """Connect, then AUTH / SELECT / CLIENT SETNAME, all bounded by ``timeout``."""
    loop = asyncio.get_running_loop()
    protocol = RespProtocol(loop, timeout, on_lost)

    async def connect() -> None:
        if address.path:
            await loop.create_unix_connection(lambda: protocol, address.path)
        else:
            ctx = ssl.create_default_context() if address.tls else None
            await loop.create_connection(lambda: protocol, address.host, address.port, ssl=ctx)
        setup: list[asyncio.Future[Any]] = []
        if address.password is not None:
            auth = (address.username, address.password) if address.username else (address.password,)
            setup.append(protocol.send(pack("AUTH", *auth)))
        if address.db:
            setup.append(protocol.send(pack("SELECT", address.db)))
        setup.append(protocol.send(pack("CLIENT", "SETNAME", name)))
        results = await asyncio.gather(*setup, return_exceptions=True)
        for i, result in enumerate(results):
            if isinstance(result, BaseException):
                if i == len(results) - 1 and isinstance(result, RespError):
                    continue  # an error reply to SETNAME: some proxies refuse it, which is fine
                raise result  # AUTH or SELECT refused, or the connection closed during the handshake

    try:
        await asyncio.wait_for(connect(), timeout)
    except (OSError, TimeoutError, RespError) as e:
        protocol.detach()
        if isinstance(e, RespError):
            raise
        raise RespConnectionError(f"cannot connect to Redis at {address.path or address.host}: {e}") from e
    return protocol


# Reconnect attempts back off to at most this: links that are not in the local cache answer 503
# until the data connection is back, so it must be back within a second of Redis (a refused or
# timed-out connect every 0.25-0.5 s per process costs Redis and the edge next to nothing).
RECONNECT_CAP = 0.5


def backoff_delays(base: float = 0.05, cap: float = RECONNECT_CAP) -> Callable[[int], float]:
    """Exponential backoff with full jitter on the upper half, attempt 0 → immediate."""

    def delay(attempt: int) -> float:
        if attempt == 0:
            return 0.0
        ceiling = min(cap, base * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.random() * ceiling / 2

    return delay


class RespClient:
    """Auto-pipelining client over one connection, reconnecting in the background.

    ``await client.start()`` makes the first attempt; the client is usable (failing fast) even
    when Redis is down, and comes back by itself.
    """

    def __init__(self, url: str | RedisAddress, *, timeout: float = 1.0, name: str = "linkedge-edge") -> None:
        self.address = RedisAddress.from_url(url) if isinstance(url, str) else url
        self.timeout = timeout
        self.name = name
        self.errors = 0  # connection failures and timeouts, for /metrics
        self._protocol: RespProtocol | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._delay = backoff_delays()
        self._closed = False
        self._down_since: float | None = None  # monotonic time since when there is no connection

    @property
    def connected(self) -> bool:
        return self._protocol is not None and not self._protocol.closed

    def stalled(self, bound: float) -> list[RedisAddress]:
        """``[address]`` when this client has been without a connection for over ``bound`` seconds."""
        since = self._down_since
        if since is None or self._closed or time.monotonic() - since <= bound:
            return []
        return [self.address]

    async def start(self) -> None:
        """Connect now if possible; otherwise keep trying in the background."""
        self._reconnect()
        assert self._connecting is not None
        try:
            await asyncio.shield(self._connecting)
        except (RespConnectionError, RespError) as e:
            log.warning("Redis not reachable yet: %s", e)

    def _reconnect(self) -> None:
        if self._closed:
            return
        if self._down_since is None:
            self._down_since = time.monotonic()
        if self._reconnect_task is not None and not self._reconnect_task.done():
            return
        self._connecting = asyncio.get_running_loop().create_future()
        self._reconnect_task = asyncio.create_task(self._connect_loop(self._connecting))

    async def _connect_loop(self, done: asyncio.Future[None]) -> None:
        attempt = 0
        while not self._closed:
            await asyncio.sleep(self._delay(attempt))
            try:
                protocol = await open_connection(self.address, timeout=self.timeout, name=self.name, on_lost=self._lost)
                if protocol.closed:  # closed between the handshake and now: its loss was nobody's to see
                    raise RespConnectionError("connection closed right after the handshake")
                self._protocol = protocol
                self._down_since = None
            except (RespConnectionError, RespError) as e:
                self.errors += 1
                if not done.done():
                    # Callers waiting on this attempt fail now; the loop keeps trying.
                    done.set_exception(e)
                    done.exception()  # retrieved: nobody may be waiting
                attempt += 1
                continue
            if not done.done():
                done.set_result(None)
            return

    def _lost(self, protocol: RespProtocol, exc: Exception | None) -> None:
        if protocol is self._protocol:
            self._protocol = None
            if not self._closed:
                self.errors += 1
                log.warning("Redis connection lost (%s); reconnecting", exc or "closed")
                self._reconnect()

    async def execute(self, *args: Arg) -> Any:
        """Send one command and await its reply; error replies raise :class:`RespError`."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._wait_connected()
        return await protocol.send(pack(*args))

    async def execute_after(self, first: tuple[Arg, ...], *args: Arg) -> Any:
        """Send ``first`` then ``args`` back to back on one connection; returns the reply to ``args``.

        For commands that only hold for the next one on the same connection (Redis Cluster's ASKING).
        """
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._wait_connected()
        before = protocol.send(pack(*first))
        reply = protocol.send(pack(*args))
        results = await asyncio.gather(before, reply, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results[1]

    async def get(self, key: str) -> bytes | None:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._wait_connected()
        reply: bytes | None = await protocol.send(pack("GET", key))
        return reply

    async def _wait_connected(self) -> RespProtocol:
        if self._closed:
            raise RespConnectionError("client closed")
        connecting = self._connecting
        if connecting is None or connecting.done():
            # No connection and no attempt waiting: make sure one is being made (a no-op while the
            # background loop backs off), and fail fast meanwhile. Whatever lost the connection,
            # the client never stays without one.
            self._reconnect()
            raise RespConnectionError("Redis is unreachable")
        await asyncio.shield(connecting)
        if self._protocol is None or self._protocol.closed:
            raise RespConnectionError("Redis connection lost")
        return self._protocol

    async def aclose(self) -> None:
        self._closed = True
        await cancel(self._reconnect_task)
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None
