"""The arq queue contract: queue name, hash tag, job ids, and the pool that enqueues and serves jobs.

arq knows nothing of clusters: it runs MULTI/EXEC and WATCH over several keys (the queue, the
job, ``arq:abort``...). Every arq key therefore carries the hash tag :data:`ARQ_TAG`, the name of
arq's fixed key ``arq:abort`` in braces, so all of them share that key's slot, and the arq pool
(:class:`ArqPool`) is a plain client pointed at the master that owns the slot. When the slot moves
(failover, resharding), a ``MOVED`` reply makes the pool look the owner up again and retry; a
lost connection makes it look up again for the next command.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import uuid4

from arq.connections import ArqRedis, RedisSettings
from arq.constants import abort_jobs_ss
from arq.jobs import Job
from redis.asyncio import ConnectionPool
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from kit.redis import connect_redis
from redirector.keys import ARQ_ABORT_KEY, ARQ_TAG, arq_queue_name
from redirector.redis_url import cluster_seeds, is_cluster_url

log = logging.getLogger("linkedge.queue")

# The tag is arq's fixed key in braces (redirector.keys); it must match the arq in use.
assert ARQ_ABORT_KEY == abort_jobs_ss, "arq renamed its abort key: update redirector.keys.ARQ_ABORT_KEY"

__all__ = ["ARQ_TAG", "ArqPool", "arq_job_id", "arq_queue_name", "create_arq_pool"]


def arq_job_id(job_id: str | None = None, namespace: str = "") -> str:
    """A job id in the arq slot (a random one when ``job_id`` is None); tagging twice is a no-op.

    arq's keys (``arq:job:<id>``, ``arq:result:<id>``...) ignore ``KEY_PREFIX``, so the id starts
    with it (``namespace``): deployments or test runs sharing a Redis keep their jobs apart.
    """
    job_id = job_id or uuid4().hex
    return job_id if job_id.endswith(ARQ_TAG) else f"{namespace}{job_id}{ARQ_TAG}"


def _redirected(error: ResponseError) -> bool:
    return str(error).startswith(("MOVED ", "ASK "))


async def arq_node(url: str) -> tuple[str, int]:
    """Host and port of the cluster master that owns the arq slot."""
    cluster = cast(RedisCluster, connect_redis(url))
    try:
        await cluster.initialize()
        node = cluster.get_node_from_key(abort_jobs_ss)
        if node is None:
            raise RedisError(f"no Redis Cluster master owns the slot of {abort_jobs_ss!r}")
        return node.host, int(node.port)
    finally:
        await cluster.aclose()


async def arq_redis_settings(url: str) -> RedisSettings:
    """arq's connection settings: the server itself, or the master owning the arq slot."""
    if not is_cluster_url(url):
        return RedisSettings.from_dsn(url)
    seed = cluster_seeds(url)[0]
    host, port = await arq_node(url)
    return RedisSettings(host=host, port=port, username=seed.username, password=seed.password, ssl=seed.tls)


class ArqPool(ArqRedis):
    """arq's pool that tags every job id into the arq slot and follows that slot around a cluster."""

    cluster_url: str | None = None
    job_namespace: str = ""  # the KEY_PREFIX, put in front of every job id (see arq_job_id)

    async def enqueue_job(
        self,
        function: str,
        *args: Any,
        _job_id: str | None = None,
        _queue_name: str | None = None,
        _defer_until: datetime | None = None,
        _defer_by: None | int | float | timedelta = None,
        _expires: None | int | float | timedelta = None,
        _job_try: int | None = None,
        **kwargs: Any,
    ) -> Job | None:
        options: dict[str, Any] = {
            "_job_id": arq_job_id(_job_id, self.job_namespace),
            "_queue_name": _queue_name,
            "_defer_until": _defer_until,
            "_defer_by": _defer_by,
            "_expires": _expires,
            "_job_try": _job_try,
        }
        try:
            return await super().enqueue_job(function, *args, **options, **kwargs)
        except ResponseError as e:
            # Redirected before anything was written (WATCH and EXISTS come first): safe to retry.
            if self.cluster_url is None or not _redirected(e):
                raise
        await self.repoint()
        return await super().enqueue_job(function, *args, **options, **kwargs)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except ResponseError as e:
            if self.cluster_url is None or not _redirected(e):
                raise
            await self.repoint()  # a redirected command did not run: retry it on the new owner
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except (RedisConnectionError, RedisTimeoutError):
            if self.cluster_url is not None:
                # The command may or may not have run, so it is not retried; the next one goes
                # to whichever master owns the slot by then.
                await self._try_repoint()
            raise

    async def _try_repoint(self) -> None:
        try:
            await self.repoint()
        except (RedisError, OSError) as e:
            log.warning("cannot look up the Redis Cluster master of the arq slot: %s", e)

    async def repoint(self) -> None:
        """Point the pool at the master that owns the arq slot now."""
        assert self.cluster_url is not None
        host, port = await arq_node(self.cluster_url)
        old = self.connection_pool
        if (old.connection_kwargs.get("host"), old.connection_kwargs.get("port")) == (host, port):
            return
        log.warning("arq slot moved to %s:%d; reconnecting the arq pool there", host, port)
        self.connection_pool = ConnectionPool(**{**old.connection_kwargs, "host": host, "port": port})
        await old.disconnect()


async def create_arq_pool(
    url: str, *, queue_name: str, job_namespace: str = "", retries: int = 5, socket_timeout: float | None = None
) -> ArqPool:
    """arq's pool for ``url`` (the arq slot's master in a cluster), answering PING.

    Retries ``retries`` times a second apart, as ``arq.create_pool`` does, then raises.
    ``socket_timeout`` (seconds) bounds the wait for each reply; None waits as long as the
    connection lasts.
    """
    attempt = 0
    while True:
        settings = None
        try:
            settings = await arq_redis_settings(url)
            pool = ArqPool(
                host=settings.host,
                port=settings.port,
                unix_socket_path=settings.unix_socket_path,
                db=settings.database,
                username=settings.username,
                password=settings.password,
                ssl=settings.ssl,
                socket_connect_timeout=settings.conn_timeout,
                socket_timeout=socket_timeout,
                encoding="utf8",
                default_queue_name=queue_name,
            )
            pool.cluster_url = url if is_cluster_url(url) else None
            pool.job_namespace = job_namespace
            await pool.ping()
            return pool
        except (RedisError, OSError, TimeoutError) as e:
            if attempt >= retries:
                raise
            attempt += 1
            where = f"{settings.host}:{settings.port}" if settings else url
            log.warning("arq's Redis at %s not reachable (%s); %d retries left", where, e, retries - attempt + 1)
            await asyncio.sleep(1)
