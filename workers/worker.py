"""The arq worker: the roll-up and cache-heal loops, the jobs of ``workers.jobs``, and a cron
job every 10 minutes that purges bio pages deleted but not yet removed (``purge_deleted_pages``).

The roll-up runs as long-lived background tasks started in ``startup`` rather than as an arq
cron job: cron fires at most once a second and each firing costs an enqueue, while the loop
polls the streams every ``ROLLUP_IDLE_MS`` (200 ms) when idle and back to back under load.
A ``burst=True`` worker starts no loops; enqueue ``rollup_drain`` to have it drain the
streams once (tests, one-off catch-up).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from arq.connections import RedisSettings
from arq.cron import cron
from arq.worker import Worker, func

from api.db import create_pool
from workers.heal import heal_loop
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
    ctx["metrics"] = metrics = Metrics()
    ctx["stop"] = stop = asyncio.Event()
    ctx["tasks"] = []
    if not ctx.get("background", True):
        return
    metrics.serve(settings.metrics_port)
    rollup = Rollup(settings, pg, ctx["redis"], metrics)
    ctx["rollup"] = rollup
    ctx["tasks"] = [
        asyncio.create_task(rollup.manage(stop), name="rollup-manage"),
        asyncio.create_task(rollup.roll(stop), name="rollup"),
        asyncio.create_task(heal_loop(settings, pg, ctx["redis"], metrics, stop), name="cache-heal"),
    ]
    log.info("roll-up started: %d shards, prefix %r", settings.event_shards, settings.key_prefix)


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop the loops (leases are given back so other workers take over at once), close the pool."""
    if "stop" in ctx:
        ctx["stop"].set()
        await asyncio.gather(*ctx["tasks"], return_exceptions=True)
    if "metrics" in ctx:
        ctx["metrics"].close()
    pg: asyncpg.Pool | None = ctx.get("pg")
    if pg is not None:
        await pg.close()


async def rollup_drain(ctx: dict[str, Any]) -> int:
    """Job: apply every event waiting in the shards no other worker holds; returns entries consumed."""
    rollup = Rollup(ctx["settings"], ctx["pg"], ctx["redis"], ctx["metrics"])
    return await rollup.drain()


def create_worker(settings: Settings, **kwargs: Any) -> Worker:
    """The worker process; ``kwargs`` go to :class:`arq.worker.Worker` (e.g. ``burst=True``)."""
    background = not kwargs.get("burst", False)
    return Worker(
        functions=[func(rollup_drain, name="rollup_drain"), *FUNCTIONS],
        # Catches bio pages whose delete_page job was lost; arq runs each firing once across workers (unique).
        cron_jobs=[cron(purge_deleted_pages, minute={0, 10, 20, 30, 40, 50})],
        queue_name=settings.queue_name,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"settings": settings, "background": background},
        **kwargs,
    )
