"""The auto-pipelining RESP client against the real Redis (and stalled or private servers)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis

from redirector.pubsub import Subscriber
from redirector.resp.client import (
    RedisAddress,
    RespClient,
    RespConnectionError,
    RespError,
    RespTimeoutError,
)
from tests.redirector.edge_support import free_port, private_redis, redis_client


@contextlib.asynccontextmanager
async def connected(url: str, **kwargs):
    client = RespClient(url, **kwargs)
    await client.start()
    try:
        yield client
    finally:
        await client.aclose()


async def eventually(predicate, timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", RedisAddress("127.0.0.1", 6379)),
        ("redis://:pw@example.org/3", RedisAddress("example.org", 6379, password="pw", db=3)),
        ("redis://user:p%40ss@h:7000", RedisAddress("h", 7000, username="user", password="p@ss")),
        ("rediss://h", RedisAddress("h", 6379, tls=True)),
        ("unix:///tmp/redis.sock?db=2", RedisAddress(path="/tmp/redis.sock", db=2)),
    ],
)
def test_address_from_url(url, expected):
    assert RedisAddress.from_url(url) == expected


async def test_commands_and_replies(redis_url, key_prefix, clean):
    async with connected(redis_url) as client:
        assert await client.execute("SET", f"{key_prefix}a", b"\x00bin\xff") == b"OK"
        assert await client.get(f"{key_prefix}a") == b"\x00bin\xff"
        assert await client.get(f"{key_prefix}missing") is None
        assert await client.execute("INCR", f"{key_prefix}n") == 1
        assert await client.execute("RPUSH", f"{key_prefix}l", 1, 2.5, "x") == 3
        assert await client.execute("LRANGE", f"{key_prefix}l", 0, -1) == [b"1", b"2.5", b"x"]


async def test_concurrent_commands_share_writes(redis_url, key_prefix, clean):
    r = redis.Redis.from_url(redis_url)
    r.mset({f"{key_prefix}k{i}": f"v{i}" for i in range(1000)})
    async with connected(redis_url) as client:
        protocol = client._protocol
        before = protocol.writes
        values = await asyncio.gather(*(client.get(f"{key_prefix}k{i}") for i in range(1000)))
        assert values == [f"v{i}".encode() for i in range(1000)]
        assert protocol.writes - before == 1  # one event-loop tick, one write


async def test_error_replies_keep_the_pipeline_aligned(redis_url, key_prefix, clean):
    async with connected(redis_url) as client:
        await client.execute("SET", f"{key_prefix}s", "text")
        results = await asyncio.gather(
            client.get(f"{key_prefix}s"),
            client.execute("INCR", f"{key_prefix}s"),
            client.execute("NOSUCHCOMMAND"),
            client.get(f"{key_prefix}s"),
            return_exceptions=True,
        )
        assert results[0] == b"text" and results[3] == b"text"
        assert isinstance(results[1], RespError) and "not an integer" in str(results[1])
        assert isinstance(results[2], RespError) and "unknown command" in str(results[2]).lower()
        with pytest.raises(RespError):
            await client.execute("INCR", f"{key_prefix}s")
        assert await client.execute("PING") == b"PONG"


async def test_cancelled_caller_does_not_shift_replies(redis_url, key_prefix, clean):
    async with connected(redis_url) as client:
        await client.execute("SET", f"{key_prefix}x", "1")
        await client.execute("SET", f"{key_prefix}y", "2")
        first = asyncio.ensure_future(client.get(f"{key_prefix}x"))
        second = asyncio.ensure_future(client.get(f"{key_prefix}y"))
        await asyncio.sleep(0)
        first.cancel()
        assert await second == b"2"
        assert await client.get(f"{key_prefix}x") == b"1"


async def test_reconnects_after_the_server_kills_the_connection(redis_url, key_prefix, clean):
    r = redis.Redis.from_url(redis_url)
    async with connected(redis_url) as client:
        own_id = await client.execute("CLIENT", "ID")
        pending = asyncio.ensure_future(client.execute("BLPOP", f"{key_prefix}never", 5))
        await asyncio.sleep(0.05)
        assert r.client_kill_filter(_id=own_id) == 1
        with pytest.raises(RespConnectionError):
            await pending  # in flight when the connection died
        assert await eventually(lambda: client.connected)
        assert await client.execute("PING") == b"PONG"
        assert await client.execute("CLIENT", "ID") != own_id
        assert client.errors >= 1


async def test_unreachable_server_fails_fast_then_recovers():
    port = free_port()
    async with connected(f"redis://127.0.0.1:{port}/0", timeout=0.5) as client:
        assert not client.connected
        with pytest.raises(RespConnectionError):
            await client.get("k")
        with private_redis(port=port):
            assert await eventually(lambda: client.connected, timeout=10)
            assert await client.execute("PING") == b"PONG"


async def test_command_timeout_on_a_stalled_server():
    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1024):
            pass  # swallow everything, answer nothing
        writer.close()

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = RespClient(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    try:
        await client.start()  # CLIENT SETNAME never answers: the first connect times out
        assert not client.connected
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_command_timeout_aborts_the_connection(redis_url, key_prefix, clean):
    async with connected(redis_url, timeout=0.2) as client:
        with pytest.raises(RespTimeoutError):
            await client.execute("BLPOP", f"{key_prefix}never", 2)  # the server holds the reply back
        assert await eventually(lambda: client.connected)
        assert await client.execute("PING") == b"PONG"


async def test_auth_and_select_from_the_url():
    with private_redis("--requirepass", "s3cret") as (url, _):
        port = url.rsplit(":", 1)[1].split("/")[0]
        async with connected(f"redis://:s3cret@127.0.0.1:{port}/2") as client:
            await client.execute("SET", "k", "in-db-2")
        assert redis.Redis(port=int(port), password="s3cret", db=2).get("k") == b"in-db-2"
        assert redis.Redis(port=int(port), password="s3cret", db=0).get("k") is None
        bad = RespClient(f"redis://:wrong@127.0.0.1:{port}/0")
        await bad.start()
        try:
            assert not bad.connected
        finally:
            await bad.aclose()


async def test_subscriber_delivers_messages_and_resets_on_reconnect(redis_url, key_prefix, clean):
    r = redis_client({"REDIS_URL": redis_url})
    messages: list[bytes] = []
    resets: list[int] = []
    channel = f"{key_prefix}chan"
    sub = Subscriber(redis_url, channel, messages.append, lambda: resets.append(1), ping_interval=0.2)
    await sub.start()
    try:
        assert resets == [1]
        r.publish(channel, b"k1")
        assert await eventually(lambda: messages == [b"k1"])
        port = sub._protocol._transport.get_extra_info("sockname")[1]
        [conn] = [c for c in r.client_list() if c["addr"] == f"127.0.0.1:{port}"]
        r.client_kill_filter(_id=conn["id"])
        assert await eventually(lambda: len(resets) == 2)
        r.publish(channel, b"k2")
        assert await eventually(lambda: messages == [b"k1", b"k2"])
    finally:
        await sub.aclose()
