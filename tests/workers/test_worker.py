"""The arq worker process: burst mode, shard sharing, and the self-healing serving cache."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from kit.queue import create_arq_pool
from redirector.cache import decode_record
from redirector.keys import link_key, purge_cron_name, ready_key
from tests.support import ROOT, eventually, free_port
from tests.workers.conftest import expected, lines, make_world, push, random_events
from tests.workers.proxy import Proxy
from tests.workers.test_rollup import assert_tables
from workers.heal import heal_once
from workers.rollup import Rollup
from workers.settings import Settings
from workers.worker import LinkedgeWorker, create_worker


# arq 0.28's Worker.close() calls redis-py's deprecated close().
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_burst_worker_runs_the_drain_job(settings: Settings, pg: asyncpg.Pool, redis: Redis) -> None:
    world = await make_world(pg)
    events = random_events(world, 3000, seed=30)
    await push(redis, settings.key_prefix, lines(events))
    arq = await create_arq_pool(settings.redis_url, queue_name=settings.queue_name, job_namespace=settings.key_prefix)
    await arq.enqueue_job("rollup_drain")
    await arq.aclose()

    worker = create_worker(settings, burst=True, poll_delay=0, handle_signals=False)
    try:
        await worker.async_run()
    finally:
        await worker.close()

    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    await assert_tables(pg, expected(events))


async def test_workers_share_the_shards_and_take_over_a_dead_ones(
    settings: Settings, pg: asyncpg.Pool, redis: Redis
) -> None:
    a, b = Rollup(settings, pg, redis), Rollup(settings, pg, redis)
    await a.balance()
    await b.balance()
    await a.balance()  # a now sees two live workers and gives back its extra shards
    await b.balance()
    assert len(a.owned) == len(b.owned) == settings.event_shards // 2
    assert not a.owned & b.owned
    # a dies without releasing anything: once its heartbeat and leases expire, b holds every shard.
    await asyncio.sleep(settings.lease_ms / 1000 + 0.2)
    await b.balance()
    assert b.owned == set(range(settings.event_shards))
    await b.release_all()


async def test_heal_rebuilds_a_lost_cache(settings: Settings, pg: asyncpg.Pool, redis: Redis) -> None:
    world = await make_world(pg)
    prefix = settings.key_prefix
    assert await heal_once(settings, pg, redis) == len(world.links)
    assert await heal_once(settings, pg, redis) is None  # ready: nothing to do
    await redis.delete(*[link_key(prefix, c) for c in world.codes.values()], ready_key(prefix))
    assert await heal_once(settings, pg, redis) == len(world.links)
    for link, code in world.codes.items():
        raw = await redis.get(link_key(prefix, code))
        assert raw is not None and decode_record(raw).id == link


async def test_worker_process_heals_the_cache_after_a_flush(
    env: dict[str, str], settings: Settings, pg: asyncpg.Pool, redis: Redis, tmp_path: Path
) -> None:
    world = await make_world(pg, n_links=20)
    prefix = settings.key_prefix
    log = tmp_path / "worker.log"
    worker_env = {**os.environ, **env, "WORKER_METRICS_PORT": str(free_port()), "CACHE_HEAL_INTERVAL": "0.5"}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=worker_env, stdout=out, stderr=out)
    keys = [link_key(prefix, c) for c in world.codes.values()]

    async def all_cached() -> bool:
        return bool(await redis.exists(ready_key(prefix))) and await redis.exists(*keys) == len(keys)

    try:
        await eventually(all_cached, what=f"the first build; log:\n{log.read_text()}")
        # What FLUSHALL does to this deployment: every key of the prefix is gone.
        doomed = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        await redis.delete(*doomed)
        flushed = time.monotonic()
        await eventually(all_cached, timeout=10, what="the cache to come back")
        assert time.monotonic() - flushed < 10
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


async def test_worker_schedules_the_purge_of_deleted_pages(env) -> None:
    """Pages whose delete_page job was lost are purged by a cron job every ten minutes."""
    from workers.worker import create_worker

    worker = create_worker(Settings.from_env(env), burst=True)
    try:
        crons = {job.name: job for job in worker.cron_jobs}
        # The name carries arq's hash tag: arq builds each firing's job id from it (Redis Cluster).
        # ... and the key prefix, so deployments (and test runs) sharing a Redis keep their firings apart.
        name = f"{env['KEY_PREFIX']}cron:purge_deleted_pages{{arq:abort}}"
        assert name in crons  # with the retention cron (tests/workers/test_retention.py)
        assert crons[name].minute == {0, 10, 20, 30, 40, 50}
    finally:
        await worker.close()


@pytest.fixture
async def cut_off_worker(env: dict[str, str], settings: Settings) -> AsyncIterator[tuple[LinkedgeWorker, Proxy]]:
    """A worker whose arq pool reaches Redis through a proxy the test can cut (its loop is not run)."""
    url = urlsplit(env["REDIS_URL"])
    proxy = Proxy(url.hostname or "127.0.0.1", url.port or 6379)
    proxy.start()
    proxied = dataclasses.replace(settings, redis_url=urlunsplit(url._replace(netloc=proxy.url_netloc)))
    worker = create_worker(proxied, handle_signals=False, max_jobs=2)
    assert isinstance(worker, LinkedgeWorker)
    worker._pool = await create_arq_pool(
        proxied.redis_url, queue_name=settings.queue_name, job_namespace=settings.key_prefix
    )
    try:
        yield worker, proxy
    finally:
        await worker.close()
        await asyncio.sleep(0.1)  # the proxy's pipes see the pool's connections close
        proxy.close()


async def test_the_poll_loop_rides_out_redis_being_unreachable(cut_off_worker: tuple[LinkedgeWorker, Proxy]) -> None:
    worker, proxy = cut_off_worker
    proxy.cut()
    await worker._poll_iteration()  # arq's own would raise, and end the process
    assert worker.health.failing() == {"queue": "redis"}
    # A claim that fails half-way gives its job slot back: with max_jobs=2, a third would find none.
    for _ in range(3):
        with pytest.raises(RedisConnectionError):
            await worker.start_jobs([b"some-job"])
    assert worker.job_counter == 0
    proxy.start()
    await worker._poll_iteration()
    assert worker.health.failing() == {}


async def test_a_cron_firing_that_fails_to_enqueue_is_retried(
    cut_off_worker: tuple[LinkedgeWorker, Proxy], settings: Settings, redis: Redis
) -> None:
    worker, proxy = cut_off_worker
    (purge,) = [job for job in worker.cron_jobs if job.name == purge_cron_name(settings.key_prefix)]
    due = datetime.now(tz=worker.timezone).replace(microsecond=0)
    purge.next_run = due
    proxy.cut()
    with pytest.raises(RedisConnectionError):
        await worker.run_cron(due, 0.5)
    assert purge.next_run == due  # not skipped: the next heartbeat tries the same firing again
    proxy.start()
    await worker.run_cron(due, 0.5)
    assert purge.next_run is not None and purge.next_run > due
    assert await redis.zcard(settings.queue_name) == 1


_HOLDS_SUMMERS = """
import asyncio, sys, time
from workers.aggregate import summarize
from workers.rollup import create_summer
from workers.settings import Settings

async def main():
    summer = create_summer(Settings(rollup_sum_processes=2))
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(summer, summarize, []) for _ in range(2)))
    print(" ".join(str(pid) for pid in summer._processes), flush=True)
    time.sleep(60)

if __name__ == "__main__":
    asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_summing_processes_exit_when_their_worker_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "holds_summers.py"
    script.write_text(_HOLDS_SUMMERS)
    holder = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout is not None
        pids = [int(p) for p in holder.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "a summing process outlived its worker"
