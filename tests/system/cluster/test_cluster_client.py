"""The edge's Redis Cluster client against a real cluster: routing, MOVED, ASK, the subscriber."""

from __future__ import annotations

import asyncio

import pytest
import redis
from redis.crc import key_slot as redis_key_slot

from redirector.pubsub import Subscriber
from redirector.redis_url import RedisAddress, cluster_seeds, is_cluster_url
from redirector.resp.client import RespError
from redirector.resp.cluster import ClusterRespClient, key_slot, parse_redirect
from tests.system.cluster.support import LocalCluster, free_ports


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+cluster://h1:7000", [RedisAddress("h1", 7000)]),
        ("redis+cluster://h1:7000,h2:7001/0", [RedisAddress("h1", 7000), RedisAddress("h2", 7001)]),
        ("redis+cluster://h1", [RedisAddress("h1", 6379)]),
        (
            "rediss+cluster://u:p%40ss@h1:7000,[::1]:7001",
            [RedisAddress("h1", 7000, username="u", password="p@ss", tls=True)]
            + [RedisAddress("::1", 7001, username="u", password="p@ss", tls=True)],
        ),
        ("redis+cluster://:pw@h1:7000", [RedisAddress("h1", 7000, password="pw")]),
    ],
)
def test_seed_urls(url: str, expected: list[RedisAddress]) -> None:
    assert is_cluster_url(url)
    assert cluster_seeds(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h1:7000", "not a Redis Cluster URL"),
        ("redis+cluster://h1:7000/2", "only database 0"),
        ("redis+cluster://", "names no seed node"),
        ("redis+cluster://h1:notaport", "bad seed node"),
    ],
)
def test_bad_seed_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cluster_seeds(url)


def test_key_slot_matches_redis() -> None:
    keys = [b"", b"le:l:abc", b"le:ev:{3}", b"{}x", b"a{}{b}", b"{user1000}.following", b"\xff\x00{x"]
    keys += [f"k{i}".encode() for i in range(2000)]
    assert [key_slot(k) for k in keys] == [redis_key_slot(k) for k in keys]


def test_parse_redirect() -> None:
    assert parse_redirect(RespError("MOVED 3999 127.0.0.1:6381")) == ("MOVED", 3999, "127.0.0.1", 6381)
    assert parse_redirect(RespError("ASK 12 [::1]:7000")) == ("ASK", 12, "::1", 7000)
    assert parse_redirect(RespError("ERR wrong number of arguments")) is None


def _node_id(port: int) -> str:
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        return str(client.execute_command("CLUSTER", "MYID").decode())
    finally:
        client.close()


async def test_commands_go_to_the_master_of_their_slot(cluster: LocalCluster) -> None:
    client = ClusterRespClient(cluster.url)
    await client.start()
    try:
        assert sorted(a.port for a in client.masters) == sorted(cluster.ports)
        keys = [f"route:{i}" for i in range(300)]
        await asyncio.gather(*(client.execute("SET", k, k) for k in keys))
        assert await asyncio.gather(*(client.get(k) for k in keys)) == [k.encode() for k in keys]
        assert await client.execute("PING") == b"PONG"
        # Each key sits on the master that owns its slot (asked of that node directly).
        for port in cluster.ports:
            node = redis.Redis(host="127.0.0.1", port=port)
            try:
                held = [k for k in keys if node.execute_command("CLUSTER", "COUNTKEYSINSLOT", key_slot(k.encode()))]
                assert held and all(node.get(k) == k.encode() for k in held)
            finally:
                node.close()
    finally:
        await client.aclose()


async def test_moved_is_followed_and_fixes_the_slot(cluster: LocalCluster) -> None:
    client = ClusterRespClient(cluster.url, refresh_interval=3600)
    await client.start()
    try:
        await client.execute("SET", "moved:key", "v")
        slot = key_slot(b"moved:key")
        right = client._slots[slot]
        wrong = next(c for c in client._masters if c is not right)
        client._slots[slot] = wrong  # a stale map, as after a resharding
        assert await client.get("moved:key") == b"v"
        assert client.redirects == 1
        assert client._slots[slot] is right  # fixed at once, before the background refresh
        assert await client.execute("GET", "moved:key") == b"v"
        assert client.redirects == 1
    finally:
        await client.aclose()


async def test_ask_during_a_slot_migration(cluster: LocalCluster) -> None:
    """A key of a migrating slot that is not on the source is read and written on the target after ASKING."""
    client = ClusterRespClient(cluster.url, refresh_interval=3600)
    await client.start()
    key = "ask:key"
    slot = key_slot(key.encode())
    source_port = client._slots[slot].address.port  # type: ignore[union-attr]
    target_port = next(p for p in cluster.ports if p != source_port)
    source = redis.Redis(host="127.0.0.1", port=source_port)
    target = redis.Redis(host="127.0.0.1", port=target_port)
    try:
        target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(source_port))
        source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(target_port))
        assert await client.execute("SET", key, "moved-over") == b"OK"
        assert await client.get(key) == b"moved-over"
        assert client.redirects == 2
        assert source.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        assert target.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 1
    finally:
        await client.aclose()
        pipe = target.pipeline(transaction=False)
        pipe.execute_command("ASKING")
        pipe.delete(key)
        pipe.execute()
        for node in (source, target):
            node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
            node.close()


async def test_unreachable_seed_is_skipped_and_the_client_recovers(cluster: LocalCluster) -> None:
    dead = free_ports(1)[0]
    client = ClusterRespClient(f"redis+cluster://127.0.0.1:{dead},127.0.0.1:{cluster.ports[0]}")
    await client.start()
    try:
        assert len(client.masters) == 3
        await client.execute("SET", "seed:key", "1")
        assert await client.get("seed:key") == b"1"
    finally:
        await client.aclose()


async def test_subscriber_moves_past_a_dead_node(cluster: LocalCluster) -> None:
    dead = free_ports(1)[0]
    url = f"redis+cluster://127.0.0.1:{dead},127.0.0.1:{cluster.ports[1]}"
    messages: list[bytes] = []
    sub = Subscriber(url, "cluster:chan", messages.append, lambda: None, ping_interval=0.5)
    await sub.start(wait=5.0)
    try:
        assert sub.subscribed.is_set() and sub.address.port == cluster.ports[1]
        # PUBLISH on another node reaches it: classic pub/sub is broadcast over the cluster bus.
        other = redis.Redis(host="127.0.0.1", port=cluster.ports[2])
        try:
            other.publish("cluster:chan", "hello")
        finally:
            other.close()
        for _ in range(100):
            if messages:
                break
            await asyncio.sleep(0.02)
        assert messages == [b"hello"]
    finally:
        await sub.aclose()
