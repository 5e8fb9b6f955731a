"""No loss and no double count when a worker is SIGKILLed or PostgreSQL goes away mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.asyncio import Redis

from kit.postgres import create_pool
from redirector.keys import event_stream_key
from tests.support import ROOT, eventually, free_port
from tests.workers.conftest import expected, lines, make_world, push, random_events
from tests.workers.proxy import Proxy
from tests.workers.test_rollup import assert_tables
from workers.rollup import Rollup
from workers.settings import Settings


async def backlog(redis: Redis, settings: Settings) -> int:
    return sum([await redis.xlen(event_stream_key(settings.key_prefix, s)) for s in range(settings.event_shards)])


async def applied(pg: asyncpg.Pool) -> int:
    return int(await pg.fetchval("SELECT coalesce(sum(clicks + views + bots), 0) FROM stats_totals"))


def start_worker(env: dict[str, str], log: Path, metrics_port: int) -> subprocess.Popen[bytes]:
    worker_env = {
        **os.environ,
        **env,
        "WORKER_METRICS_PORT": str(metrics_port),
        "ROLLUP_BATCH": "1",  # one stream entry per shard per transaction: many commits to kill
        "ROLLUP_LEASE_MS": "1500",
        "ROLLUP_IDLE_MS": "20",
    }
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=worker_env, stdout=out, stderr=out)


async def test_worker_killed_mid_run_loses_and_doubles_nothing(
    env: dict[str, str], settings: Settings, pg: asyncpg.Pool, redis: Redis, tmp_path: Path
) -> None:
    world = await make_world(pg)
    first, second = random_events(world, 6000, seed=11), random_events(world, 3000, seed=12)
    await push(redis, settings.key_prefix, lines(first), per_entry=10)
    port = free_port()
    log = tmp_path / "worker.log"
    proc = start_worker(env, log, port)
    try:
        await eventually(lambda: _gt(applied(pg), 0), what=f"the worker to apply something; log:\n{log.read_text()}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert await backlog(redis, settings) > 0, "the worker finished before it was killed"
        await push(redis, settings.key_prefix, lines(second), per_entry=10)
        proc = start_worker(env, log, port)
        await eventually(
            lambda: _eq(backlog(redis, settings), 0), what=f"the restarted worker to drain; log:\n{log.read_text()}"
        )
        await assert_tables(pg, expected(first + second))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "linkedge_rollup_events_total" in metrics and 'linkedge_stream_backlog{shard="0"}' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    # A graceful stop gives the leases back.
    assert not [k async for k in redis.scan_iter(match=f"{settings.key_prefix}rollup:lease:*")]


async def _gt(value: Awaitable[int], n: int) -> bool:
    return await value > n


async def _eq(value: Awaitable[int], n: int) -> bool:
    return await value == n


async def test_postgres_outage_events_wait_then_apply_once(
    env: dict[str, str], settings: Settings, pg: asyncpg.Pool, redis: Redis
) -> None:
    world = await make_world(pg)
    url = urlsplit(env["DATABASE_URL"])
    proxy = Proxy(url.hostname or "127.0.0.1", url.port or 5432)
    proxy.start()
    proxied = urlunsplit(url._replace(netloc=f"{url.username or 'postgres'}@{proxy.url_netloc}"))
    pool = await create_pool(proxied, min_size=0, max_size=4)
    rollup = Rollup(settings, pool, redis)
    await rollup.balance(greedy=True)
    stop = asyncio.Event()
    task = asyncio.create_task(rollup.roll(stop))
    waves = [random_events(world, n, seed=20 + i) for i, n in enumerate((2000, 2000, 6000))]
    try:
        await push(redis, settings.key_prefix, lines(waves[0]), per_entry=20)
        await eventually(lambda: _eq(backlog(redis, settings), 0), what="wave 1")
        # Down while idle: the next events wait in Redis.
        proxy.cut()
        await push(redis, settings.key_prefix, lines(waves[1]), per_entry=20)
        await asyncio.sleep(1.0)
        assert await backlog(redis, settings) > 0
        await assert_tables(pg, expected(waves[0]))
        proxy.start()
        await eventually(lambda: _eq(backlog(redis, settings), 0), what="wave 2 after PostgreSQL came back")
        # Down in the middle of a run of commits.
        before = await applied(pg)
        await push(redis, settings.key_prefix, lines(waves[2]), per_entry=5)
        await eventually(lambda: _gt(applied(pg), before), what="wave 3 to start")
        proxy.cut()
        await asyncio.sleep(0.5)
        proxy.start()
        await eventually(lambda: _eq(backlog(redis, settings), 0), what="wave 3")
        await assert_tables(pg, expected(waves[0] + waves[1] + waves[2]))
        assert rollup.metrics.registry.get_sample_value("linkedge_rollup_errors_total")
    finally:
        stop.set()
        await task
        await rollup.release_all()
        await pool.close()
        proxy.close()
