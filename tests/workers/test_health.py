"""The worker's loop health: one log line per outage, capped back-off, degraded vs wedged, /healthz."""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request
from collections.abc import Awaitable

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from kit.postgres import create_pool
from redirector.keys import event_stream_key
from tests.support import eventually, free_port
from tests.workers.conftest import expected, lines, make_world, push, random_events
from tests.workers.test_rollup import assert_tables
from workers.health import BACKOFF_MAX, Health, dependency
from workers.metrics import Metrics
from workers.rollup import Rollup
from workers.settings import Settings


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (RedisConnectionError("Error 111 connecting"), "redis"),
        (ConnectionRefusedError(111, "refused"), "postgres"),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed"), "postgres"),
        (asyncpg.exceptions.AdminShutdownError("terminating"), "postgres"),
        (TimeoutError(), "postgres"),
        (asyncpg.exceptions.UndefinedTableError("no table"), None),
        (KeyError("bug"), None),
    ],
)
def test_failures_are_put_down_to_their_dependency(exc: BaseException, kind: str | None) -> None:
    assert dependency(exc) == kind


def test_an_outage_is_logged_once_and_retried_with_capped_backoff(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    health = Health(metrics)
    loop = health.loop("rollup", first_pause=0.1)
    sample = metrics.registry.get_sample_value
    with caplog.at_level(logging.INFO, logger="linkedge.worker"):
        pauses = [loop.failed(RedisConnectionError("Connection refused")) for _ in range(12)]
        assert sample("linkedge_worker_redis_up") == 0 and sample("linkedge_worker_degraded") == 1
        assert sample("linkedge_worker_postgres_up") == 1
        assert sample("linkedge_worker_loop_up", {"loop": "rollup"}) == 0
        loop.failed(ConnectionRefusedError(111, "refused"))  # Redis is back, PostgreSQL is not
        assert sample("linkedge_worker_redis_up") == 1 and sample("linkedge_worker_postgres_up") == 0
        loop.ok()
    assert 0.08 <= pauses[0] <= 0.1 and all(p <= BACKOFF_MAX for p in pauses)
    assert pauses[-1] >= 0.8 * BACKOFF_MAX
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "rollup: Redis unreachable",
        "rollup: PostgreSQL unreachable",
        "rollup: recovered after 0.0 s",
    ]
    assert not any(r.exc_info for r in caplog.records)
    assert sample("linkedge_worker_degraded") == 0 and sample("linkedge_worker_postgres_up") == 1
    assert sample("linkedge_worker_loop_failures_total", {"loop": "rollup"}) == 13
    assert health.check() == (True, "ok")


def test_a_loop_is_wedged_only_when_overdue_past_its_pause() -> None:
    health = Health(Metrics(), stall_after=5)
    loop = health.loop("cache-heal")
    assert health.stalled(now=loop.due + 60) == {}  # not started: not watched
    loop.start()
    assert health.stalled(now=loop.due + 4) == {}
    assert set(health.stalled(now=loop.due + 6)) == {"cache-heal"}
    loop.finish()  # stopped on purpose
    assert health.stalled(now=loop.due + 60) == {}


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def test_healthz_fails_while_a_loop_is_wedged_and_passes_once_it_moves_again(
    env: dict[str, str], settings: Settings, pg: asyncpg.Pool, redis: Redis
) -> None:
    world = await make_world(pg)
    first, second = random_events(world, 500, seed=60), random_events(world, 500, seed=61)
    pool = await create_pool(env["DATABASE_URL"], min_size=0, max_size=1)
    metrics = Metrics()
    health = Health(metrics, stall_after=2)
    rollup = Rollup(settings, pool, redis, metrics, health)
    port = free_port()
    metrics.serve(port, health.check)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(rollup.manage(stop)), asyncio.create_task(rollup.roll(stop))]

    async def drained() -> bool:
        return sum([await redis.xlen(event_stream_key(settings.key_prefix, s)) for s in range(8)]) == 0

    async def status() -> int:
        return (await asyncio.to_thread(healthz, port))[0]

    try:
        await push(redis, settings.key_prefix, lines(first))
        await eventually(drained, what="the first events")
        assert await asyncio.to_thread(healthz, port) == (200, "ok\n")
        # A leaked connection: the pool's only one is held elsewhere, so the roll-up's next acquire
        # waits for ever while PostgreSQL and Redis answer. No timeout ends that round: a wedge.
        held = await pool.acquire()
        try:
            await push(redis, settings.key_prefix, lines(second))
            await eventually(lambda: _is(status(), 503), timeout=10, what="/healthz to fail")
            text = (await asyncio.to_thread(healthz, port))[1]
            assert text.startswith("wedged: no progress from rollup (") and "manage" not in text, text
            assert metrics.registry.get_sample_value("linkedge_worker_wedged") == 1
            assert metrics.registry.get_sample_value("linkedge_worker_degraded") == 0  # nothing is down
        finally:
            await pool.release(held)
        await eventually(drained, what="the second events")
        assert await asyncio.to_thread(healthz, port) == (200, "ok\n")
        await assert_tables(pg, expected(first + second))
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        metrics.close()
        await rollup.release_all()
        await pool.close()


async def _is(value: Awaitable[int], wanted: int) -> bool:
    return await value == wanted
