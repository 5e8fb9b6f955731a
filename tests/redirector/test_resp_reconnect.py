"""The RESP client never stays without a connection: not even when Redis closes a new connection
in the middle of its handshake (what a restarting Redis does), which used to wedge it for good."""

from __future__ import annotations

import asyncio
import time

import pytest

from redirector.resp.client import RespClient, cancel
from tests.support import free_port

REDIS = ("127.0.0.1", 6379)


class HandshakeCloser:
    """A loopback stand-in for Redis: the first ``drops`` connections are closed as soon as the
    client's handshake arrives; later ones are piped to the real Redis."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.accepted = 0
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> HandshakeCloser:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.append(writer)
        self.accepted += 1
        if self.accepted <= self.drops:
            await reader.read(1)  # the handshake (CLIENT SETNAME) has started to arrive
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*REDIS)
        self.writers.append(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def ping_within(client: RespClient, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if await client.execute("PING") == b"PONG":
                return True
        except (ConnectionError, OSError):
            pass
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("drops", [1, 4], ids=["one handshake", "several in a row"])
async def test_connections_closed_during_the_handshake_are_retried(drops: int) -> None:
    async with HandshakeCloser(drops=drops) as redis:
        client = RespClient(f"redis://127.0.0.1:{redis.port}/0", timeout=0.5)
        try:
            await client.start()
            assert await ping_within(client, 10.0), "the client never reconnected"
            assert redis.accepted > drops
        finally:
            await client.aclose()


async def test_stopping_a_loop_that_lost_its_cancellation_still_ends() -> None:
    """Python 3.11's wait_for drops a cancellation that lands as its operation completes; the
    reconnect loops carry on after that, and shutting the edge down used to wait for them forever."""
    rounds = 0

    async def reconnect_loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            try:
                await asyncio.sleep(0.01)  # a connection attempt
            except asyncio.CancelledError:
                if rounds == 1:
                    continue  # what wait_for does when the attempt has just failed
                raise

    task = asyncio.create_task(reconnect_loop())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel(task))
    done, _ = await asyncio.wait({stopping}, timeout=5)  # (not wait_for: its own cancel would end the loop)
    if not done:
        task.cancel()
        await stopping
    assert done, "cancel() kept waiting for a loop that carried on"
    assert task.cancelled() and rounds >= 2
