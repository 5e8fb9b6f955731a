"""kit.redis.connect_redis: one server or a Cluster from REDIS_URL, failures as RedisErrors either way."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from kit.redis import Cluster, connect_redis, is_cluster
from tests.redirector.edge_support import free_port


async def test_a_server_url_gives_a_plain_client(redis_url: str, key_prefix: str) -> None:
    client = connect_redis(redis_url)
    try:
        assert not is_cluster(client)
        key = f"{key_prefix}kit:redis"
        await client.set(key, "1", ex=60)
        assert await client.get(key) == b"1"
        await client.delete(key)
    finally:
        await client.aclose()


async def test_a_cluster_url_gives_a_cluster_client_whose_failures_are_redis_errors() -> None:
    client = connect_redis(f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}")
    try:
        assert is_cluster(client) and isinstance(client, Cluster)  # built without connecting
        with pytest.raises(RedisConnectionError, match="Redis Cluster"):
            await client.get("x")
    finally:
        await client.aclose()
