"""The whole stack on a real three-master Redis Cluster: API, two edges and a worker as processes.

Every process gets ``REDIS_URL=redis+cluster://...`` (three seeds) and nothing else about the
cluster. Checked: links created through the API redirect on both edges; a PATCH reaches an edge's
in-process cache through pub/sub within a second; hundreds of clicks over many codes (so over
every master and every stream shard) come out exactly in PostgreSQL; a bio page's deletion runs
as an arq job (arq's keys all in one slot); losing one master's data, then every master's, heals
without a manual step within 10 s; ``linkedge cache rebuild`` rewrites and sweeps.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio.cluster import RedisCluster

from kit.redis import connect_redis
from redirector.keys import ARQ_TAG, event_stream_key, link_key
from tests.support import team_key
from tests.system.cluster.support import ROOT, LocalCluster, stack, wait_for

BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"}
LINKS = 60
CLICKS = 600


@pytest.mark.timeout(240)
async def test_the_stack_runs_on_a_redis_cluster(cluster: LocalCluster, cluster_env: dict[str, str], tmp_path: Path):
    env, prefix = cluster_env, cluster_env["KEY_PREFIX"]
    auth = team_key(env["DATABASE_URL"], "cluster", "business").headers
    data = connect_redis(env["REDIS_URL"])
    rc: RedisCluster = data  # type: ignore[assignment]
    pg = await asyncpg.connect(env["DATABASE_URL"])
    clicks: Counter[str] = Counter()  # redirects answered, per code: what PostgreSQL must end up with

    with stack(env, tmp_path) as procs:
        every = list(procs.values())
        api = httpx.AsyncClient(base_url=procs["api"].base_url + "/api/v1", headers=auth, timeout=10)
        edges = [httpx.AsyncClient(base_url=procs[n].base_url, headers=BROWSER, timeout=10) for n in ("edge", "direct")]
        cached, direct = edges

        async def hit(edge: httpx.AsyncClient, code: str) -> httpx.Response:
            r = await edge.get(f"/{code}")
            if r.status_code == 302:
                clicks[code] += 1
            return r

        try:
            # Links through the API: their records spread over every master.
            codes = [f"cl{i:03d}-{random.randrange(10**6)}" for i in range(LINKS)]
            body = {"links": [{"url": f"https://example.com/{c}", "custom_slug": c} for c in codes]}
            r = await api.post("/links/bulk", json=body)
            assert r.status_code == 201, r.text
            ids = {link["short_code"]: link["id"] for link in r.json()["data"]["created"]}
            assert sorted(ids) == sorted(codes)
            await rc.initialize()
            owners = {rc.get_node_from_key(link_key(prefix, c)).port for c in codes}  # type: ignore[union-attr]
            assert owners == set(cluster.ports)
            for edge in edges:
                for code in codes:
                    r = await hit(edge, code)
                    assert r.status_code == 302 and r.headers["location"] == f"https://example.com/{code}"

            # A PATCH reaches the caching edge through the invalidation channel within a second.
            code = codes[0]
            assert (await hit(cached, code)).headers["location"] == f"https://example.com/{code}"
            r = await api.patch(f"/links/{ids[code]}", json={"url": "https://example.com/patched"})
            assert r.status_code == 200, r.text
            took = await wait_for(
                lambda: _location_is(hit(cached, code), "https://example.com/patched"),
                1.0,
                "the PATCH on the edge",
                *every,
            )
            assert took < 1.0

            # Hundreds of clicks over every code and both edges, concurrently.
            gate = asyncio.Semaphore(32)

            async def click(i: int) -> None:
                async with gate:
                    r = await hit(edges[i % 2], codes[i % LINKS])
                    assert r.status_code == 302

            await asyncio.gather(*(click(i) for i in range(CLICKS)))
            total = sum(clicks.values())
            assert total >= CLICKS + 2 * LINKS

            async def drained() -> bool:
                return int(await pg.fetchval("SELECT coalesce(sum(scan_count), 0) FROM links")) >= total

            await wait_for(drained, 30, f"{total} clicks in PostgreSQL", *every)
            await asyncio.sleep(0.5)  # anything more than expected would show up now
            rows = await pg.fetch("SELECT code, scan_count FROM links")
            assert {r["code"]: r["scan_count"] for r in rows} == dict(clicks)
            stats = await pg.fetchval(
                "SELECT coalesce(sum(clicks), 0) FROM stats_totals WHERE subject_id = ANY($1::uuid[])",
                list(ids.values()),
            )
            assert stats == total
            shards = [await data.xlen(event_stream_key(prefix, s)) for s in range(8)]
            assert shards == [0] * 8  # applied entries are trimmed

            # arq on the cluster: deleting a bio page queues a job the worker runs.
            r = await api.post(
                "/bio-pages", json={"handle": "cluster-page", "blocks": [{"type": "text", "label": "x"}]}
            )
            assert r.status_code == 201, r.text
            page_id = r.json()["data"]["id"]
            assert (await api.delete(f"/bio-pages/{page_id}")).status_code in (200, 204)

            async def page_gone() -> bool:
                return await pg.fetchval("SELECT count(*) FROM bio_pages WHERE id = $1", page_id) == 0

            await wait_for(page_gone, 15, "the worker's delete_page job", *every)
            assert not [k async for k in data.scan_iter(match="arq:job:*")]
            assert not [k async for k in data.scan_iter(match="*arq*") if ARQ_TAG.encode() not in k]

            # One master loses its data alone (a restart without persistence): healed, no manual step.
            victim = next(iter(owners))
            await cluster_flush(cluster, victim)
            lost = [c for c in codes if rc.get_node_from_key(link_key(prefix, c)).port == victim]  # type: ignore[union-attr]
            assert lost and not await data.exists(*[link_key(prefix, lost[0])])
            await wait_for(lambda: _all_cached(data, prefix, codes), 10, "one master's records to come back", *every)

            # Every master loses everything.
            cluster.flushall()
            await wait_for(lambda: _all_redirect(direct, codes), 10, "every link to redirect after FLUSHALL", *every)
            await wait_for(lambda: _all_cached(data, prefix, codes), 10, "every record to come back", *every)
        finally:
            await api.aclose()
            for edge in edges:
                await edge.aclose()

    # `linkedge cache rebuild` against the cluster: records rewritten, stale ones swept from every master.
    await data.delete(*[link_key(prefix, c) for c in codes[:10]])
    stale = [link_key(prefix, f"gone{i}") for i in range(30)]
    for key in stale:
        await data.set(key, b"L1{}")
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "cache", "rebuild"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {LINKS} cache records" in done.stdout
    assert await _all_cached(data, prefix, codes)
    assert await data.exists(*stale) == 0
    await data.aclose()
    await pg.close()


async def cluster_flush(cluster: LocalCluster, port: int) -> None:
    node = connect_redis(cluster.node_url(port))
    try:
        await node.flushall()
    finally:
        await node.aclose()


async def _location_is(response: Awaitable[httpx.Response], url: str) -> bool:
    return (await response).headers.get("location") == url


async def _all_cached(data: Any, prefix: str, codes: list[str]) -> bool:
    async with data.pipeline(transaction=False) as pipe:
        for code in codes:
            pipe.exists(link_key(prefix, code))
        return all(await pipe.execute())


async def _all_redirect(edge: httpx.AsyncClient, codes: list[str]) -> bool:
    for code in codes:
        if (await edge.get(f"/{code}")).status_code != 302:
            return False
    return True
