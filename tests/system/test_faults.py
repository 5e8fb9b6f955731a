"""No loss and no double count when a worker is SIGKILLed, or PostgreSQL or Redis goes away mid-run;
a worker process outlives a Redis outage, says so in /metrics, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.asyncio import Redis

from kit.postgres import create_pool
from kit.queue import create_arq_pool
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
        sample = rollup.metrics.registry.get_sample_value
        assert (sample("linkedge_worker_postgres_up"), sample("linkedge_worker_degraded")) == (0, 1)
        assert sample("linkedge_worker_redis_up") == 1
        proxy.start()
        await eventually(lambda: _eq(backlog(redis, settings), 0), what="wave 2 after PostgreSQL came back")
        assert (sample("linkedge_worker_postgres_up"), sample("linkedge_worker_degraded")) == (1, 0)
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


# Redis outages: the worker process stays up, says it is degraded, and carries on once Redis is back.


def start_redis(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    """A redis-server of this test's own; it loads the RDB a previous one SAVEd in ``data_dir``."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.02)


def scrape(port: int) -> dict[str, float]:
    """The worker's /metrics samples, ``{'name{label="v"}': value}``."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines() if line and line[0] != "#")
    }


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def alive(proc: subprocess.Popen[bytes], log: Path) -> None:
    assert proc.poll() is None, f"the worker exited with {proc.returncode}; log:\n{log.read_text()}"


async def served(proc: subprocess.Popen[bytes], log: Path, port: int) -> bool:
    alive(proc, log)
    try:
        await asyncio.to_thread(scrape, port)
    except OSError:
        return False
    return True


async def degraded(port: int, value: float) -> bool:
    samples = await asyncio.to_thread(scrape, port)
    return samples["linkedge_worker_degraded"] == value and samples["linkedge_worker_redis_up"] == 1 - value


def stop(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, then the exit code; a process still running after ``timeout`` is killed and fails the test."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise AssertionError(f"the worker was still running {timeout} s after SIGTERM") from None


async def test_worker_outlives_a_redis_outage_and_applies_everything_once(
    env: dict[str, str], settings: Settings, pg: asyncpg.Pool, tmp_path: Path
) -> None:
    world = await make_world(pg)
    waves = [random_events(world, n, seed=40 + i) for i, n in enumerate((1000, 3000, 1000))]
    port, metrics_port, log = free_port(), free_port(), tmp_path / "worker.log"
    redis_server = start_redis(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    redis = Redis.from_url(url)
    proc = start_worker({**env, "REDIS_URL": url, "WORKER_STALL_AFTER": "4"}, log, metrics_port)
    try:
        await push(redis, settings.key_prefix, lines(waves[0]), per_entry=20)
        await eventually(lambda: _eq(backlog(redis, settings), 0), what=f"wave 1; log:\n{log.read_text()}")
        # Wave 2 is being applied when Redis dies; the restarted one loads a snapshot taken just before,
        # so it may hold entries applied since: they must not count twice.
        await push(redis, settings.key_prefix, lines(waves[1]), per_entry=5)
        await eventually(lambda: _gt(applied(pg), len(waves[0])), what="wave 2 to start")
        await redis.save()
        redis_server.kill()
        redis_server.wait(10)
        outage = log.stat().st_size
        for _ in range(6):  # longer than WORKER_STALL_AFTER: an outage is not a wedge
            await asyncio.sleep(1)
            alive(proc, log)
            status, text = await asyncio.to_thread(healthz, metrics_port)
            assert status == 200 and text.startswith("degraded"), text
        assert await degraded(metrics_port, 1)
        samples = await asyncio.to_thread(scrape, metrics_port)
        assert samples['linkedge_worker_loop_up{loop="queue"}'] == 0
        assert samples['linkedge_worker_loop_up{loop="rollup-manage"}'] == 0

        redis_server = start_redis(port, tmp_path)
        await push(redis, settings.key_prefix, lines(waves[2]), per_entry=20)
        await eventually(lambda: _eq(backlog(redis, settings), 0), what=f"the waves after; log:\n{log.read_text()}")
        await assert_tables(pg, expected(waves[0] + waves[1] + waves[2]))
        await eventually(lambda: degraded(metrics_port, 0), timeout=15, what="/metrics to say recovered")
        assert await asyncio.to_thread(healthz, metrics_port) == (200, "ok\n")
        # arq's poll loop is back on the same pool: a job enqueued now runs.
        arq = await create_arq_pool(url, queue_name=settings.queue_name, job_namespace=settings.key_prefix)
        try:
            job = await arq.enqueue_job("rollup_drain")
            assert job is not None
            await job.result(timeout=15)
        finally:
            await arq.aclose()
        during = log.read_bytes()[outage:].decode()
        assert "Traceback" not in during, during
        # One line when each loop's outage starts (queue, rollup, rollup-manage, cache-heal), one when it ends.
        assert 1 <= during.count("Redis unreachable") <= 4, during
        assert during.count("recovered after") == during.count("Redis unreachable"), during
        assert during.count("trim after commit failed") <= 2, during
        assert stop(proc, 10) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        await redis.aclose()
        redis_server.kill()
        redis_server.wait(10)


async def test_worker_started_while_redis_is_down_waits_for_it_and_stops_on_sigterm(
    env: dict[str, str], settings: Settings, pg: asyncpg.Pool, tmp_path: Path
) -> None:
    world = await make_world(pg)
    events = random_events(world, 1000, seed=50)
    port, metrics_port, log = free_port(), free_port(), tmp_path / "worker.log"
    url = f"redis://127.0.0.1:{port}/0"
    proc = start_worker({**env, "REDIS_URL": url}, log, metrics_port)
    redis_server: subprocess.Popen[bytes] | None = None
    redis = Redis.from_url(url)
    try:
        await eventually(lambda: served(proc, log, metrics_port), timeout=15, what="/metrics while Redis is down")
        await asyncio.sleep(2)
        alive(proc, log)
        assert await degraded(metrics_port, 1)
        assert (await asyncio.to_thread(healthz, metrics_port))[0] == 200

        redis_server = start_redis(port, tmp_path)
        await push(redis, settings.key_prefix, lines(events), per_entry=20)
        await eventually(lambda: _eq(backlog(redis, settings), 0), what=f"the events; log:\n{log.read_text()}")
        await assert_tables(pg, expected(events))
        await eventually(lambda: degraded(metrics_port, 0), timeout=15, what="/metrics to say recovered")

        # SIGTERM while Redis is down again: a prompt, clean exit.
        redis_server.kill()
        redis_server.wait(10)
        await eventually(lambda: degraded(metrics_port, 1), timeout=10, what="/metrics to say degraded")
        started = time.monotonic()
        assert stop(proc, 10) == 0, log.read_text()
        assert time.monotonic() - started < 5
        assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        await redis.aclose()
        if redis_server is not None:
            redis_server.kill()
            redis_server.wait(10)


async def test_worker_waiting_for_redis_at_start_stops_on_sigterm(env: dict[str, str], tmp_path: Path) -> None:
    metrics_port, log = free_port(), tmp_path / "worker.log"
    proc = start_worker({**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, log, metrics_port)
    try:
        await eventually(lambda: served(proc, log, metrics_port), timeout=15, what="/metrics while Redis is down")
        await asyncio.sleep(1)
        started = time.monotonic()
        assert stop(proc, 10) == 0, log.read_text()
        assert time.monotonic() - started < 5
        assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
