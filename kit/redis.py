"""Every redis-py client of the API, the worker and the CLI comes from here: one Redis or a Cluster.

``REDIS_URL`` is either a single server (``redis://``, ``rediss://``, ``unix://``) or a Redis
Cluster given by seed nodes: ``redis+cluster://[user:password@]host:port[,host:port...]``
(``rediss+cluster://`` for TLS; parsed by :mod:`redirector.redis_url`). :func:`connect_redis`
returns a ``Redis`` or a ``RedisCluster``. The code using it sticks to what both do the same way:
single-key commands, EVAL with one key, non-transactional pipelines (the cluster client splits
them per node), SCAN (the cluster client walks every master). A cluster pipeline refuses PUBLISH
(and the async cluster client has no ``publish`` method), so in a cluster it is sent on its own
with ``execute_command("PUBLISH", ...)``.
"""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from redirector.redis_url import cluster_seeds, is_cluster_url

__all__ = ["Cluster", "connect_redis", "is_cluster", "is_cluster_url"]


def connect_redis(url: str, **kwargs: Any) -> Redis:
    """A client for ``url``: ``Redis`` for one server, ``RedisCluster`` for ``redis+cluster://``.

    The cluster client is typed as ``Redis`` for the callers' sake: every command they use has the
    same signature on both. It connects lazily, on its first command.
    """
    if not is_cluster_url(url):
        return cast(Redis, Redis.from_url(url, **kwargs))
    seeds = cluster_seeds(url)
    first = seeds[0]
    cluster = Cluster(
        startup_nodes=[ClusterNode(s.host, s.port) for s in seeds],
        username=first.username,
        password=first.password,
        ssl=first.tls,
        **kwargs,
    )
    return cast(Redis, cluster)


class Cluster(RedisCluster):
    """``RedisCluster`` whose failures are all ``RedisError``s, as with one Redis.

    redis-py raises ``RedisClusterException`` (not a ``RedisError``) when no node can be reached
    to (re)load the slot map; every caller here catches ``RedisError`` (fail open, queue a repair),
    so it is turned into a ``redis.exceptions.ConnectionError``.
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as e:
            raise RedisConnectionError(f"Redis Cluster: {e}") from e

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)  # raises: no transactions in a cluster
        return _Pipeline(self)  # type: ignore[abstract]  # connection_pool is set at runtime


class _Pipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except RedisClusterException as e:
            raise RedisConnectionError(f"Redis Cluster: {e}") from e


def is_cluster(redis: Redis | RedisCluster) -> bool:
    return isinstance(redis, RedisCluster)
