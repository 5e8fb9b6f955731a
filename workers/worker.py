"""The arq worker: the roll-up and cache-heal loops, the jobs of ``workers.jobs``, and a cron
job every 10 minutes that purges bio pages deleted but not yet removed (``purge_deleted_pages``),
and an hourly one that deletes roll-ups older than the team's plan keeps (``prune_expired_stats``).

The roll-up runs as long-lived background tasks started in ``startup`` rather than as an arq
cron job: cron fires at most once a second and each firing costs an enqueue, while the loop
polls the streams every ``ROLLUP_IDLE_MS`` (200 ms) when idle and back to back under load.
A ``burst=True`` worker starts no loops; enqueue ``rollup_drain`` to have it drain the
streams once (tests, one-off catch-up).

Two Redis clients: arq's pool (``ctx["redis"]``) for the queue, and ``ctx["data_redis"]`` from
:func:`kit.redis.connect_redis` for the streams, leases and cache. On one Redis they reach the
same server; on a Redis Cluster arq's pool is a plain client on the master of the arq slot
(:class:`kit.queue.ArqPool`) while the data client routes every key to its own master.

Redis going away never ends the process (arq's own loop would raise and exit). The worker serves
``/metrics`` and ``/healthz`` first, then waits for Redis with back-off; once running, a failed
poll, health record or cron firing is retried with back-off on the same pool, as the background
loops retry theirs (:mod:`workers.health`). SIGTERM stops it at once, Redis up or down.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import datetime
from typing import Any

import asyncpg
from arq.connections import log_redis_info
from arq.cron import cron
from arq.utils import poll
from arq.worker import Worker, func

from kit.postgres import create_pool
from kit.queue import ArqPool, create_arq_pool
from kit.redis import connect_redis
from redirector.keys import purge_cron_name, retention_cron_name
from workers.heal import heal_loop
from workers.health import REDIS_DOWN, Health
from workers.jobs import FUNCTIONS, purge_deleted_pages
from workers.metrics import Metrics
from workers.retention import prune_expired_stats
from workers.rollup import Rollup, create_summer
from workers.settings import Settings

log = logging.getLogger("linkedge.worker")
# What arq's own calls raise when Redis is unreachable (redis-py wraps most socket errors itself).
_ARQ_REDIS_DOWN: tuple[type[BaseException], ...] = (*REDIS_DOWN, OSError, TimeoutError)


async def startup(ctx: dict[str, Any]) -> None:
    """Open the PostgreSQL pool (``ctx["pg"]``) and start the background loops."""
    settings: Settings = ctx["settings"]
    # min_size=0: the worker starts (and waits for PostgreSQL in its loops) even when the database is down.
    ctx["pg"] = pg = await create_pool(
        settings.database_url, min_size=0, max_size=settings.pg_pool_size, command_timeout=60
    )
    ctx["data_redis"] = data = connect_redis(
        settings.redis_url, socket_timeout=settings.redis_timeout, socket_connect_timeout=settings.redis_timeout
    )
    # create_worker puts them in; a ctx built by hand (tests) gets its own.
    if "metrics" not in ctx:
        ctx["metrics"] = Metrics()
    metrics: Metrics = ctx["metrics"]
    if "health" not in ctx:
        ctx["health"] = Health(metrics, settings.stall_after)
    health: Health = ctx["health"]
    ctx["stop"] = stop = asyncio.Event()
    ctx["tasks"] = []
    if not ctx.get("background", True):
        return
    ctx["summer"] = summer = create_summer(settings)
    rollup = Rollup(settings, pg, data, metrics, health, summer)
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
    if ctx.get("summer") is not None:  # idle once the loops are done: their exit takes milliseconds
        ctx["summer"].shutdown(wait=True, cancel_futures=True)
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
    """arq's worker with its pool from :func:`kit.queue.create_arq_pool` (Redis or Cluster), made to
    outlast Redis outages: its poll loop (jobs, health record, cron) reports to ``health`` as ``queue``.

    A ``burst`` worker keeps arq's behaviour and raises when Redis is unreachable.
    """

    def __init__(
        self, *, settings: Settings, metrics: Metrics, health: Health, serve_metrics: bool, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics
        self.health = health
        self.serve_metrics = serve_metrics
        self.queue_loop = health.loop("queue", first_pause=max(self.poll_delay_s, 0.1))

    async def main(self) -> None:
        """arq's ``Worker.main``, but serving metrics first and waiting for Redis instead of failing."""
        if self.serve_metrics:
            self.metrics.serve(self.settings.metrics_port, self.health.check)
        self.queue_loop.start()
        if self._pool is None:
            self._pool = await self._connect()
        log.info("arq worker for %d functions: %s", len(self.functions), ", ".join(self.functions))
        try:
            await log_redis_info(self.pool, log.info)
        except _ARQ_REDIS_DOWN:
            pass  # gone again already: the poll loop says so
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        async for _ in poll(self.poll_delay_s):
            await self._poll_iteration()
            if self.burst:
                if 0 <= self.max_burst_jobs <= self._jobs_started():
                    await asyncio.gather(*self.tasks.values())
                    return
                if await self.pool.zcard(self.queue_name) == 0:
                    await asyncio.gather(*self.tasks.values())
                    return

    async def _connect(self) -> ArqPool:
        s = self.settings
        while True:
            try:
                pool = await create_arq_pool(
                    s.redis_url,
                    queue_name=self.queue_name,
                    job_namespace=s.key_prefix,
                    retries=5 if self.burst else 0,
                    socket_timeout=s.redis_timeout,
                )
            except _ARQ_REDIS_DOWN as e:
                if self.burst:
                    raise
                await self.queue_loop.pause(self.queue_loop.failed(e))
                continue
            self.queue_loop.ok()
            return pool

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except _ARQ_REDIS_DOWN as e:
            if self.burst:
                raise
            # The pool stays: redis-py reconnects on the next command (a cluster's ArqPool repoints).
            await self.queue_loop.pause(self.queue_loop.failed(e))
        else:
            self.queue_loop.ok()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # arq counts a job (job_counter, its semaphore) before the WATCH/MULTI that claims it, and an
        # error there would keep the count for good: after max_jobs of them no job would ever start.
        for job_id in job_ids:
            if self.job_counter >= self.max_jobs:
                return
            try:
                await super().start_jobs([job_id])
            except Exception:
                # Any exception comes after the count and before the job's task: give the slot back.
                self._release_sem_dec_counter_on_complete()
                raise

    async def run_cron(self, n: datetime, delay: float, num_windows: int = 2) -> None:
        # arq moves each due cron job to its next firing before the enqueue is known to have worked.
        due = [(job, job.next_run) for job in self.cron_jobs]
        try:
            await super().run_cron(n, delay, num_windows)
        except Exception:
            # Put them back so the next heartbeat retries the firing; its unique job id makes a repeat a no-op.
            for job, next_run in due:
                job.next_run = next_run
            raise

    async def close(self) -> None:
        """arq's ``close``, but the shutdown runs (and the pool closes) while Redis is down too."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        pool = self._pool
        if pool is not None:
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            try:
                await pool.delete(self.health_check_key)
            except _ARQ_REDIS_DOWN as e:
                log.warning("could not delete arq's health key (it expires): %s", e)
        self.queue_loop.finish()
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        if pool is not None:
            await pool.aclose()
            self._pool = None


def create_worker(settings: Settings, **kwargs: Any) -> Worker:
    """The worker process; ``kwargs`` go to :class:`arq.worker.Worker` (e.g. ``burst=True``)."""
    background = not kwargs.get("burst", False)
    metrics = Metrics()
    health = Health(metrics, settings.stall_after)
    return LinkedgeWorker(
        settings=settings,
        metrics=metrics,
        health=health,
        serve_metrics=background,
        functions=[func(rollup_drain, name="rollup_drain"), *FUNCTIONS],
        # Catches bio pages whose delete_page job was lost; arq runs each firing once across workers
        # (unique). arq builds the firing's job id from the name, so the name carries the arq slot's tag.
        cron_jobs=[
            cron(purge_deleted_pages, name=purge_cron_name(settings.key_prefix), minute={0, 10, 20, 30, 40, 50}),
            # Hourly, off the purge's minutes; each run deletes in short batches (workers.retention).
            cron(prune_expired_stats, name=retention_cron_name(settings.key_prefix), minute=35, timeout=3600),
        ],
        queue_name=settings.queue_name,
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"settings": settings, "background": background, "metrics": metrics, "health": health},
        **kwargs,
    )
