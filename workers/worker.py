"""The arq worker: the roll-up and cache-heal loops, the jobs of ``workers.jobs``, and a cron
job every 10 minutes that purges bio pages deleted but not yet removed (``purge_deleted_pages``).

The roll-up runs as long-lived background tasks started in ``startup`` rather than as an arq
cron job: cron fires at most once a second and each firing costs an enqueue, while the loop
polls the streams every ``ROLLUP_IDLE_MS`` (200 ms) when idle and back to back under load.
A ``burst=True`` worker starts no loops; enqueue ``rollup_drain`` to have it drain the
streams once (tests, one-off catch-up).

Two Redis clients: arq's pool (``ctx["redis"]``) for the queue, and ``ctx["data_redis"]`` from
:func:`kit.redis.connect_redis` for the streams, leases and cache. On one Redis they reach the
same server; on a Redis Cluster arq's pool is a plain client on the master of the arq slot
(:class:`kit.queue.ArqPool`) while the data client routes every key to its own master.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from arq.cron import cron
from arq.worker import Worker, func

from kit.postgres import create_pool
from kit.queue import create_arq_pool
from kit.redis import connect_redis
from redirector.keys import purge_cron_name
from workers.heal import heal_loop
from workers.health import Health
from workers.jobs import FUNCTIONS, purge_deleted_pages
from workers.metrics import Metrics
from workers.rollup import Rollup
from workers.settings import Settings

log = logging.getLogger("linkedge.worker")


async def startup(ctx: dict[str, Any]) -> None:
    """Open the PostgreSQL pool (``ctx["pg"]``) and start the background loops."""
    settings: Settings = ctx["settings"]
    # min_size=0: the worker starts (and waits for PostgreSQL in its loops) even when the database is down.
    ctx["pg"] = pg = await create_pool(
        settings.database_url, min_size=0, max_size=settings.pg_pool_size, command_timeout=60
    )
    ctx["data_redis"] = data = connect_redis(settings.redis_url)
    ctx["metrics"] = metrics = Metrics()
    ctx["health"] = health = Health(metrics, settings.stall_after)
    ctx["stop"] = stop = asyncio.Event()
    ctx["tasks"] = []
    if not ctx.get("background", True):
        return
    metrics.serve(settings.metrics_port, health.check)
    rollup = Rollup(settings, pg, data, metrics, health)
    ctx["rollup"] = rollup
    ctx["tasks"] = [
        asyncio.create_task(rollup.manage(stop), name="rollup-manage"),
        asyncio.create_task(rollup.roll(stop), name="rollup"),
        asyncio.create_task(heal_loop(settings, pg, data, metrics, stop, health), name="cache-heal"),
    ]
    log.info("roll-up started: %d shards, prefix %r", settings.event_shards, settings.key_prefix)


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop the loops (leases are given back so other workers take over at once), close the pool."""
    if "stop" in ctx:
        ctx["stop"].set()
        await asyncio.gather(*ctx["tasks"], return_exceptions=True)
    if "metrics" in ctx:
        ctx["metrics"].close()
    if "data_redis" in ctx:
        await ctx["data_redis"].aclose()
    pg: asyncpg.Pool | None = ctx.get("pg")
    if pg is not None:
        await pg.close()


async def rollup_drain(ctx: dict[str, Any]) -> int:
    """Job: apply every event waiting in the shards no other worker holds; returns entries consumed."""
    rollup = Rollup(ctx["settings"], ctx["pg"], ctx["data_redis"], ctx["metrics"], ctx["health"])
    return await rollup.drain()


class LinkedgeWorker(Worker):
    """arq's worker with its pool from :func:`kit.queue.create_arq_pool` (Redis or Cluster)."""

    def __init__(self, *, redis_url: str, job_namespace: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.redis_url = redis_url
        self.job_namespace = job_namespace

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await create_arq_pool(
                self.redis_url, queue_name=self.queue_name, job_namespace=self.job_namespace
            )
        await super().main()


def create_worker(settings: Settings, **kwargs: Any) -> Worker:
    """The worker process; ``kwargs`` go to :class:`arq.worker.Worker` (e.g. ``burst=True``)."""
    background = not kwargs.get("burst", False)
    return LinkedgeWorker(
        redis_url=settings.redis_url,
        job_namespace=settings.key_prefix,
        functions=[func(rollup_drain, name="rollup_drain"), *FUNCTIONS],
        # Catches bio pages whose delete_page job was lost; arq runs each firing once across workers
        # (unique). arq builds the firing's job id from the name, so the name carries the arq slot's tag.
        cron_jobs=[
            cron(purge_deleted_pages, name=purge_cron_name(settings.key_prefix), minute={0, 10, 20, 30, 40, 50})
        ],
        queue_name=settings.queue_name,
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"settings": settings, "background": background},
        **kwargs,
    )
