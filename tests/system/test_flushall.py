"""A real FLUSHALL on a private Redis while the API, an edge and a worker run against it.

The shared test Redis cannot be flushed (other keys live there), so this test starts its own
``redis-server`` with persistence off on a free loopback port. After FLUSHALL every link must
redirect again within 10 s with no manual step, and the click pipeline (streams, shard leases)
must pick up again and keep counting exactly.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis

from api.teams import create_key, create_team
from tests.redirector import edge_support
from tests.system.cluster.support import Process, free_ports, wait_for

BROWSER = {"user-agent": edge_support.LINUX_FIREFOX}
LINKS = 30


@pytest.fixture
def private_redis() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (needed for a Redis this test may flush)")
    with edge_support.private_redis() as (url, _):
        yield url


@pytest.mark.timeout(120)
async def test_flushall_heals_and_counting_goes_on(env: dict[str, str], private_redis: str, tmp_path: Path):
    env = {**env, "REDIS_URL": private_redis}
    conn = await asyncpg.connect(env["DATABASE_URL"])
    team = await create_team(conn, "flush", "business")
    key = await create_key(conn, team.id, "all")
    api_port, edge_port, worker_port = free_ports(3)
    with ExitStack() as stop:
        procs = [
            Process("api", env, tmp_path / "api.log", port=api_port),
            # No in-process cache: every redirect reads Redis, so a lost record shows at once.
            Process("edge", {**env, "LOCAL_CACHE": "0"}, tmp_path / "edge.log", port=edge_port),
            Process(
                "worker",
                {**env, "ROLLUP_IDLE_MS": "50", "CACHE_HEAL_INTERVAL": "0.5"},
                tmp_path / "worker.log",
                port=worker_port,
            ),
        ]
        for proc in procs:
            stop.callback(proc.stop)
        for proc in procs:
            proc.wait_ready()
        api = httpx.AsyncClient(base_url=procs[0].base_url + "/api/v1", headers={"Authorization": f"Bearer {key}"})
        edge = httpx.AsyncClient(base_url=procs[1].base_url, headers=BROWSER)
        try:
            codes = [f"fl{i:02d}" for i in range(LINKS)]
            body = {"links": [{"url": f"https://example.com/{c}", "custom_slug": c} for c in codes]}
            r = await api.post("/links/bulk", json=body)
            assert r.status_code == 201, r.text

            async def click_all() -> None:
                for code in codes:
                    r = await edge.get(f"/{code}")
                    assert r.status_code == 302 and r.headers["location"] == f"https://example.com/{code}"

            async def counted(n: int) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    return await conn.fetchval("SELECT coalesce(sum(scan_count), 0) FROM links") >= n

                return check

            await click_all()
            await wait_for(await counted(LINKS), 15, f"{LINKS} clicks in PostgreSQL", *procs)

            flush = redis.Redis.from_url(private_redis)
            flush.flushall()
            flush.close()

            async def all_redirect() -> bool:
                for code in codes:
                    if (await edge.get(f"/{code}")).status_code != 302:
                        return False
                return True

            took = await wait_for(all_redirect, 10, "every link to redirect after FLUSHALL", *procs)
            assert took < 10

            # The pipeline starts over on the emptied Redis (streams and leases are gone) and still
            # counts every click exactly once. (all_redirect's own GETs were clicks too: count them.)
            rows = await conn.fetch("SELECT code, scan_count FROM links")
            before = {r["code"]: r["scan_count"] for r in rows}
            await asyncio.sleep(1.5)  # let the polls' clicks land
            rows = await conn.fetch("SELECT code, scan_count FROM links")
            settled = {r["code"]: r["scan_count"] for r in rows}
            assert all(settled[c] >= before[c] >= 1 for c in codes)
            await click_all()
            target = sum(settled.values()) + LINKS
            await wait_for(await counted(target), 15, f"{target} clicks in PostgreSQL after FLUSHALL", *procs)
            await asyncio.sleep(0.5)  # anything more than expected would show up now
            rows = await conn.fetch("SELECT code, scan_count FROM links")
            assert {r["code"]: r["scan_count"] for r in rows} == {c: settled[c] + 1 for c in codes}
        finally:
            await api.aclose()
            await edge.aclose()
            await conn.close()
