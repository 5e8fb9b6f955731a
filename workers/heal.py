"""Self-healing serving cache: notice that Redis lost it, rebuild it from PostgreSQL.

Every full build ends by writing the ``ready`` sentinel (:func:`api.serving.sync.ready_keys`: one
key, or one per master of a Redis Cluster, where a master can lose its data alone). When one is
gone (FLUSHALL, a Redis restart without persistence, eviction), one worker (holding a Redis
lock) rebuilds every record with ``SET NX``, so records already rewritten by API calls in
the meantime are never overwritten, and links serve again as soon as their record is back.
The same loop retries cache writes that failed after their commit (``cache_repairs``). It reports
to :class:`workers.health.Health` as ``cache-heal``; a long rebuild reports each time it renews its lock.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

import asyncpg
from redis.asyncio import Redis

from api.serving import sync as cache_sync
from redirector import keys
from workers import lease
from workers.health import Health, Loop
from workers.metrics import Metrics
from workers.settings import Settings

log = logging.getLogger("linkedge.worker")


async def heal_once(
    settings: Settings, pg: asyncpg.Pool, redis: Redis, metrics: Metrics | None = None, loop: Loop | None = None
) -> int | None:
    """Rebuild the cache if its ready sentinel is missing; returns records written, None if not needed."""
    if await cache_sync.is_ready(redis, settings.serving):
        return None
    key, token = keys.rebuild_lock_key(settings.key_prefix), secrets.token_hex(8)
    lock_ms = max(settings.lease_ms, 5000)
    if not await lease.acquire(redis, key, token, lock_ms):
        return None  # another worker is rebuilding
    stop = asyncio.Event()

    async def keep_lock() -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), lock_ms / 3000)
            except TimeoutError:
                if await lease.renew(redis, key, token, lock_ms) and loop is not None:
                    loop.ok()  # the rebuild is still under way, and Redis answers

    keeper = asyncio.create_task(keep_lock())
    started = time.monotonic()
    try:
        written = await cache_sync.rebuild_all(pg, redis, settings.serving, only_missing=True)
    finally:
        stop.set()
        await keeper
        await lease.release(redis, key, token)
    if metrics is not None:
        metrics.cache_rebuilds.inc()
    log.warning("serving cache was missing; rebuilt %d records in %.2f s", written, time.monotonic() - started)
    return written


async def heal_loop(
    settings: Settings,
    pg: asyncpg.Pool,
    redis: Redis,
    metrics: Metrics,
    stop: asyncio.Event,
    health: Health | None = None,
) -> None:
    """Check the cache every ``heal_interval`` and retry failed writes every ``repair_interval``; never raises."""
    loop = (health or Health(metrics, settings.stall_after)).loop("cache-heal", first_pause=settings.heal_interval)
    loop.start()
    last_repair = 0.0
    while not stop.is_set():
        try:
            await heal_once(settings, pg, redis, metrics, loop)
            if time.monotonic() - last_repair >= settings.repair_interval:
                last_repair = time.monotonic()
                repaired = await cache_sync.repair_pending(pg, redis, settings.serving)
                if repaired:
                    metrics.cache_repairs.inc(repaired)
        except Exception as e:
            pause = loop.failed(e)
        else:
            loop.ok()
            pause = settings.heal_interval
        await loop.pause(pause, stop)
    loop.finish()
