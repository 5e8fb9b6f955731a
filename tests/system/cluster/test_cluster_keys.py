"""redis-py side of the cluster support: arq's pool on the arq slot's master, per-master ready markers."""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster

from api.serving import sync as cache_sync
from api.settings import Settings
from kit.queue import ArqPool, arq_node, create_arq_pool
from kit.redis import connect_redis
from redirector.keys import ARQ_TAG, arq_queue_name
from tests.system.cluster.support import LocalCluster

PREFIX = "ck:"


async def test_arq_pool_sits_on_the_master_of_the_arq_slot(cluster: LocalCluster) -> None:
    cluster.flushall()
    queue = arq_queue_name(PREFIX)
    pool = await create_arq_pool(cluster.url, queue_name=queue)
    try:
        host, port = await arq_node(cluster.url)
        assert pool.connection_pool.connection_kwargs["port"] == port
        job = await pool.enqueue_job("rollup_drain")
        assert job is not None and job.job_id.endswith(ARQ_TAG)
        # The MULTI of enqueue_job touched the job key and the queue: both in the slot of arq:abort.
        assert await pool.zcard(queue) == 1
    finally:
        await pool.aclose()


async def test_arq_pool_follows_moved(cluster: LocalCluster) -> None:
    """A pool on the wrong master (the slot moved since) looks the owner up again and retries."""
    cluster.flushall()
    queue = arq_queue_name(PREFIX)
    host, port = await arq_node(cluster.url)
    wrong = next(p for p in cluster.ports if p != port)
    pool = ArqPool(host="127.0.0.1", port=wrong, default_queue_name=queue)
    pool.cluster_url = cluster.url
    try:
        assert await pool.zcard(queue) == 0  # MOVED, then the same command on the right master
        assert pool.connection_pool.connection_kwargs["port"] == port
        right = pool.connection_pool  # back on the wrong master, for enqueue_job's own retry
        pool.connection_pool = type(right)(**{**right.connection_kwargs, "port": wrong})
        await right.disconnect()
        job = await pool.enqueue_job("delete_page", "x", _job_id="delete_page:x")
        assert job is not None and job.job_id == "delete_page:x" + ARQ_TAG
        assert pool.connection_pool.connection_kwargs["port"] == port
        assert await pool.zcard(queue) == 1
    finally:
        await pool.aclose()


async def test_one_ready_marker_per_master(cluster: LocalCluster) -> None:
    cluster.flushall()
    redis = connect_redis(cluster.url)
    settings = Settings(redis_url=cluster.url, key_prefix=PREFIX)
    try:
        keys = await cache_sync.ready_keys(redis, settings.serving)
        rc: RedisCluster = redis  # type: ignore[assignment]
        owners = sorted(rc.get_node_from_key(k).port for k in keys)  # type: ignore[union-attr]
        assert owners == sorted(cluster.ports)
        assert not await cache_sync.is_ready(redis, settings.serving)
        await cache_sync.mark_ready(redis, settings.serving)
        assert await cache_sync.is_ready(redis, settings.serving)
        # One master loses its data alone: noticed.
        victim = connect_redis(cluster.node_url(owners[1]))
        try:
            await victim.flushall()
        finally:
            await victim.aclose()
        assert not await cache_sync.is_ready(redis, settings.serving)
    finally:
        await redis.aclose()
