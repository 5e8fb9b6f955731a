"""Redis Cluster for the edge: ``redis+cluster://`` URLs and a slot-routing :class:`~redirector.resp.client.Store`.

``REDIS_URL=redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster://`` for
TLS) names seed nodes. :class:`ClusterRespClient` reads the slot map (``CLUSTER SLOTS``) from any
seed, keeps one auto-pipelining :class:`~redirector.resp.client.RespClient` per master and sends each
command to the master of its key's slot (the key is the command's first argument; keyless
commands such as PING go to any master). A ``MOVED`` reply updates that slot at once, retries on
the named node and asks for a full map refresh; ``ASK`` retries once on the importing node after
``ASKING``, on the same connection. Connection failures fail fast, as with one node, and trigger
a refresh, which is how a failover is followed. The map is also refreshed every
``refresh_interval`` seconds. A single ``redis://`` URL never comes here: its hot path is the
plain :class:`~redirector.resp.client.RespClient`, untouched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from binascii import crc_hqx
from collections.abc import Sequence
from typing import Any

from redirector.redis_url import RedisAddress, cluster_seeds
from redirector.resp.client import (
    REDIS_ERRORS,
    Arg,
    RespClient,
    RespConnectionError,
    RespError,
    RespTimeoutError,
    backoff_delays,
    cancel,
)

log = logging.getLogger(__name__)

SLOTS = 16384
KEYLESS = frozenset({b"PING", b"ECHO", b"TIME", b"INFO", b"CLUSTER", b"CLIENT", b"COMMAND"})
MAX_REDIRECTS = 3
NodeKey = tuple[str, int]


def key_slot(key: bytes) -> int:
    """The cluster hash slot of ``key``: CRC16 of the key, or of its ``{hash tag}`` when it has one."""
    start = key.find(b"{")
    if start > -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) % SLOTS


def _encode(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def parse_redirect(error: RespError) -> tuple[str, int, str, int] | None:
    """``("MOVED" | "ASK", slot, host, port)`` from a redirection error, else None."""
    parts = str(error).split()
    if len(parts) != 3 or parts[0] not in ("MOVED", "ASK"):
        return None
    host, _, port = parts[2].rpartition(":")
    try:
        return parts[0], int(parts[1]), host.strip("[]"), int(port)
    except ValueError:
        return None


class ClusterRespClient:
    """A :class:`~redirector.resp.client.Store` over a Redis Cluster: one pipelining client per master.

    ``await client.start()`` reads the slot map once (logging, not raising, when no seed answers);
    a background task keeps it current. Until a slot has a master, its commands fail fast with
    :class:`~redirector.resp.client.RespConnectionError`.
    """

    def __init__(
        self, url: str, *, timeout: float = 1.0, name: str = "linkedge-edge", refresh_interval: float = 10.0
    ) -> None:
        self.seeds = cluster_seeds(url)
        self.timeout = timeout
        self.name = name
        self.refresh_interval = refresh_interval
        self.refreshes = 0  # slot maps applied, for tests and logs
        self.redirects = 0  # MOVED and ASK replies followed
        self._template = self.seeds[0]
        self._nodes: dict[NodeKey, RespClient] = {}
        self._masters: list[RespClient] = []
        self._slots: list[RespClient | None] = [None] * SLOTS
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retired_errors = 0
        self._closed = False

    @property
    def errors(self) -> int:
        """Connection failures and timeouts over every node client, past and present (for /metrics)."""
        return self._retired_errors + sum(c.errors for c in self._nodes.values())

    @property
    def masters(self) -> list[RedisAddress]:
        """Addresses of the masters in the current slot map."""
        return [c.address for c in self._masters]

    def stalled(self, bound: float) -> list[RedisAddress]:
        """The masters whose client has been without a connection for over ``bound`` seconds."""
        return [address for client in self._masters for address in client.stalled(bound)]

    def known_addresses(self) -> list[RedisAddress]:
        """Masters first, then the seeds: where a subscriber may connect."""
        seen: dict[NodeKey, RedisAddress] = {}
        for address in [*self.masters, *self.seeds]:
            seen.setdefault((address.host, address.port), address)
        return list(seen.values())

    async def start(self) -> None:
        """Read the slot map now if possible; keep it current in the background either way."""
        try:
            await self.refresh()
        except REDIS_ERRORS as e:
            log.warning("Redis Cluster not reachable yet: %s", e)
            self._wanted.set()
        self._task = asyncio.create_task(self._maintain())

    async def get(self, key: str) -> bytes | None:
        client = self._slots[key_slot(key.encode())]
        if client is None:
            raise self._unmapped(key)
        try:
            reply: bytes | None = await client.get(key)
        except RespError as e:
            reply = await self._redirect(e, ("GET", key), client)
        except (RespConnectionError, RespTimeoutError):
            self._wanted.set()
            raise
        return reply

    async def execute(self, *args: Arg) -> Any:
        """Send one command to the master of its key (``args[1]``), or to any master when keyless."""
        if len(args) < 2 or _encode(args[0]).upper() in KEYLESS:
            client = self._any()
        else:
            found = self._slots[key_slot(_encode(args[1]))]
            if found is None:
                raise self._unmapped(args[1])
            client = found
        try:
            return await client.execute(*args)
        except RespError as e:
            return await self._redirect(e, args, client)
        except (RespConnectionError, RespTimeoutError):
            self._wanted.set()
            raise

    def _unmapped(self, key: Arg) -> RespConnectionError:
        self._wanted.set()
        return RespConnectionError(f"no Redis Cluster master known for slot {key_slot(_encode(key))}")

    def _any(self) -> RespClient:
        for client in self._masters:
            if client.connected:
                return client
        if self._masters:
            return self._masters[0]
        self._wanted.set()
        raise RespConnectionError("no Redis Cluster master known yet")

    async def _redirect(self, error: RespError, args: Sequence[Arg], origin: RespClient) -> Any:
        """Follow MOVED/ASK replies (at most ``MAX_REDIRECTS``); any other error is re-raised."""
        for _ in range(MAX_REDIRECTS):
            redirect = parse_redirect(error)
            if redirect is None:
                raise error
            kind, slot, host, port = redirect
            self.redirects += 1
            node = await self._node(host or origin.address.host, port)
            try:
                if kind == "MOVED":
                    self._slots[slot] = node  # right now for this slot; the refresh fixes the rest
                    self._wanted.set()
                    return await node.execute(*args)
                return await node.execute_after(("ASKING",), *args)
            except RespError as e:
                error, origin = e, node
            except (RespConnectionError, RespTimeoutError):
                self._wanted.set()
                raise
        raise error

    async def _node(self, host: str, port: int) -> RespClient:
        """The client of node ``host:port``, connecting it (one bounded attempt) if new."""
        client = self._nodes.get((host, port))
        if client is None:
            address = dataclasses.replace(self._template, host=host, port=port, path=None, db=0)
            client = RespClient(address, timeout=self.timeout, name=self.name)
            self._nodes[(host, port)] = client
            await client.start()
        return client

    async def refresh(self) -> None:
        """Read ``CLUSTER SLOTS`` from the first node that answers and route by it from now on."""
        reply, origin = await self._fetch_slots()
        slots: list[RespClient | None] = [None] * SLOTS
        masters: dict[NodeKey, RespClient] = {}
        for entry in reply:
            start, end, node = int(entry[0]), int(entry[1]), entry[2]
            host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
            port = int(node[1])
            if not host or host == "?":
                host = origin.host
            client = await self._node(host, port)
            masters[(host, port)] = client
            slots[start : end + 1] = [client] * (end - start + 1)
        if not masters:
            raise RespError("Redis Cluster reports no slots (is the cluster created?)")
        self._slots = slots
        self._masters = list(masters.values())
        self.refreshes += 1
        for key in [k for k in self._nodes if k not in masters]:
            retired = self._nodes.pop(key)
            self._retired_errors += retired.errors
            await retired.aclose()

    async def _fetch_slots(self) -> tuple[Any, RedisAddress]:
        failures: list[str] = []
        for address in self.known_addresses():
            client = await self._node(address.host, address.port)
            try:
                return await client.execute("CLUSTER", "SLOTS"), address
            except REDIS_ERRORS as e:
                failures.append(f"{address.host}:{address.port}: {e}")
        raise RespConnectionError("no Redis Cluster node answered CLUSTER SLOTS (" + "; ".join(failures) + ")")

    async def _maintain(self) -> None:
        """Refresh when asked (MOVED, a lost node) or every ``refresh_interval``; back off on failures."""
        delay = backoff_delays(base=0.1)
        failures = 0
        while not self._closed:
            try:
                await asyncio.wait_for(self._wanted.wait(), self.refresh_interval)
            except TimeoutError:
                pass
            self._wanted.clear()
            try:
                await self.refresh()
                failures = 0
            except REDIS_ERRORS as e:
                failures += 1
                if failures == 1:
                    log.warning("Redis Cluster slot map refresh failed: %s", e)
                self._wanted.set()
            # Coalesces a burst of MOVED replies or failures into one refresh per pause.
            await asyncio.sleep(max(0.1, delay(failures)))

    async def aclose(self) -> None:
        self._closed = True
        await cancel(self._task)
        for client in self._nodes.values():
            await client.aclose()
        self._nodes.clear()
        self._masters = []
        self._slots = [None] * SLOTS
