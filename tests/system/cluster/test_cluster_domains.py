"""Team domains on a real three-master Redis Cluster: API, two edges and a worker as processes.

A domain's record ``d:<hostname>`` and its links' records ``l:<domain id>/<code>`` hash to whatever
masters they hash to; the edge reads one, then the other. Checked: the same slug on two teams'
domains and on the service's host goes to three destinations on both edges; a domain proved in
DNS through the API and one added by the operator (``linkedge domain add --verified``) both serve;
a PATCH and a forced delete reach the caching edge through pub/sub within a second; the domain
links' clicks come out exactly in PostgreSQL; ``linkedge cache rebuild`` puts back deleted domain
and link records and sweeps a deleted domain's; the worker's heal does the same after FLUSHALL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import pytest
from redis.asyncio.cluster import RedisCluster

from kit.redis import connect_redis
from redirector.keys import domain_key, link_key
from tests.dns_server import DnsServer
from tests.support import team_key
from tests.system.cluster.support import ROOT, LocalCluster, stack, wait_for
from tests.system.multiprocess_support import metrics, sample_sum

BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"}
ACME, GLOBEX = "go.acme.test", "go.globex.test"
PLATFORM = "sho.rt"  # the host of PUBLIC_BASE_URL in the test environment
CODES = 24  # acme's links on its domain: enough that their records land on every master


def linkedge(env: dict[str, str], *args: str) -> str:
    """Run ``linkedge ARGS`` against the cluster; its stdout (a failure fails the test)."""
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(120)
async def test_team_domains_on_a_redis_cluster(cluster: LocalCluster, cluster_env: dict[str, str], tmp_path: Path):
    dns = DnsServer()
    env, prefix = {**cluster_env, "DNS_RESOLVER": dns.address}, cluster_env["KEY_PREFIX"]
    acme_key = team_key(env["DATABASE_URL"], "acme", "business")
    globex_key = team_key(env["DATABASE_URL"], "globex", "business")
    data = connect_redis(env["REDIS_URL"])
    rc: RedisCluster = data  # type: ignore[assignment]
    pg = await asyncpg.connect(env["DATABASE_URL"])
    clicks: Counter[str] = Counter()  # link id -> redirects answered: what PostgreSQL must end up with

    with dns, stack(env, tmp_path) as procs:
        every = list(procs.values())
        base = procs["api"].base_url + "/api/v1"
        acme = httpx.AsyncClient(base_url=base, headers=acme_key.headers, timeout=10)
        globex = httpx.AsyncClient(base_url=base, headers=globex_key.headers, timeout=10)
        cached, direct = (httpx.AsyncClient(base_url=procs[n].base_url, timeout=10) for n in ("edge", "direct"))
        destinations: dict[tuple[str, str], tuple[str, str]] = {}  # (host, code) -> (link id, URL)

        async def get(edge: httpx.AsyncClient, host: str, code: str) -> tuple[int, str]:
            r = await edge.get(f"/{code}", headers={**BROWSER, "host": host})
            location = r.headers.get("location", "")
            link = destinations.get((host, code))
            if r.status_code == 302 and link is not None and location == link[1]:
                clicks[link[0]] += 1
            return r.status_code, location

        async def answers(edge: httpx.AsyncClient, host: str, code: str, expected: tuple[int, str]) -> bool:
            return await get(edge, host, code) == expected

        async def link(api: httpx.AsyncClient, code: str, url: str, **body: str) -> None:
            r = await api.post("/links", json={"url": url, "custom_slug": code, **body})
            assert r.status_code == 201, r.text
            host = body.get("domain", PLATFORM)
            destinations[(host, code)] = (r.json()["data"]["id"], url)

        try:
            # acme proves its domain in DNS through the API; the operator adds globex's, verified.
            r = await acme.post("/domains", json={"hostname": ACME})
            assert r.status_code == 201, r.text
            acme_id = r.json()["data"]["id"]
            (txt,) = [rec for rec in r.json()["data"]["dns_records"] if rec["type"] == "TXT"]
            dns.txt[txt["name"]] = [txt["value"]]
            r = await acme.post(f"/domains/{acme_id}/verify")
            assert r.status_code == 200 and r.json()["data"]["verified"], r.text
            out = linkedge(env, "domain", "add", GLOBEX, "--team", "globex", "--verified")
            assert f"added {GLOBEX} to team globex (links, verified;" in out
            globex_id = (await globex.get("/domains")).json()["data"][0]["id"]

            codes = [f"dc{i:02d}" for i in range(CODES)]
            for code in codes:
                await link(acme, code, f"https://acme.test/{code}", domain=ACME)
            await link(acme, "sale", "https://acme.test/sale", domain=ACME)
            await link(globex, "sale", "https://globex.test/sale", domain=GLOBEX)
            await link(acme, "sale", "https://platform.test/sale")

            # The records are where the cluster put them: the links on every master, the domains somewhere.
            await rc.initialize()
            owners = {rc.get_node_from_key(link_key(prefix, c, acme_id)).port for c in codes}  # type: ignore[union-attr]
            assert owners == set(cluster.ports)
            assert await data.exists(domain_key(prefix, ACME), domain_key(prefix, GLOBEX)) == 2

            # Both edges: every acme code on acme's domain, and "sale" on each host to its own URL;
            # neither domain answers the other's codes, nor the service's host a domain's.
            for edge in (cached, direct):
                for (host, code), (_, url) in destinations.items():
                    assert await get(edge, host, code) == (302, url), (host, code)
                assert await get(edge, GLOBEX, codes[0]) == (404, "")
                assert await get(edge, PLATFORM, codes[0]) == (404, "")

            # The caching edge answers acme's links from its in-process cache.
            hits = "linkedge_edge_local_cache_hits_total"
            before = sample_sum(metrics(procs["edge"].metrics_port), hits)
            assert await get(cached, ACME, "sale") == (302, "https://acme.test/sale")
            assert sample_sum(metrics(procs["edge"].metrics_port), hits) == before + 1

            # A PATCH of acme's not_found_url reaches the caching edge within a second.
            assert await get(cached, ACME, "nope") == (404, "")
            start = time.monotonic()
            r = await acme.patch(f"/domains/{acme_id}", json={"not_found_url": "https://acme.test/missing"})
            assert r.status_code == 200, r.text
            await wait_for(
                lambda: answers(cached, ACME, "nope", (302, "https://acme.test/missing")), 1.0, "the PATCH", *every
            )
            assert time.monotonic() - start < 1.0

            # globex's domain deleted (its link disabled by force): gone from both edges within a
            # second; "sale" on acme's domain and on the service's host keeps its destination.
            assert await get(cached, GLOBEX, "sale") == (302, "https://globex.test/sale")
            globex_record = await data.get(domain_key(prefix, GLOBEX))
            start = time.monotonic()
            r = await globex.delete(f"/domains/{globex_id}", params={"force": "true"})
            assert r.status_code == 200, r.text
            await wait_for(lambda: answers(cached, GLOBEX, "sale", (404, "")), 1.0, "the delete", *every)
            assert time.monotonic() - start < 1.0
            assert await get(direct, GLOBEX, "sale") == (404, "")
            assert not await data.exists(domain_key(prefix, GLOBEX))
            for edge in (cached, direct):
                assert await get(edge, ACME, "sale") == (302, "https://acme.test/sale")
                assert await get(edge, PLATFORM, "sale") == (302, "https://platform.test/sale")

            # Every redirect to a link's own URL is one click of that link in PostgreSQL.
            total = sum(clicks.values())

            async def counted() -> bool:
                return int(await pg.fetchval("SELECT coalesce(sum(scan_count), 0) FROM links")) >= total

            await wait_for(counted, 15, f"{total} clicks in PostgreSQL", *every)
            rows = await pg.fetch("SELECT id, scan_count FROM links")
            assert {str(r["id"]): r["scan_count"] for r in rows} == dict(clicks)

            # acme's records deleted from the cluster (nothing announced), and the deleted domain's
            # record planted back with a link record nobody has: the caching edge still serves acme
            # from what it holds, the other one cannot; it takes globex's domain for live again.
            acme_keys = [domain_key(prefix, ACME), *(link_key(prefix, c, acme_id) for c in [*codes, "sale"])]
            assert await data.delete(*acme_keys) == len(acme_keys)
            stale = [domain_key(prefix, GLOBEX), link_key(prefix, "ghost", globex_id)]
            assert globex_record is not None
            await data.set(stale[0], globex_record)
            await data.set(stale[1], b"L1{}")
            assert await get(direct, ACME, "sale") == (404, "")
            assert await get(cached, ACME, "sale") == (302, "https://acme.test/sale")
            assert (await direct.get("/robots.txt", headers={"host": GLOBEX})).status_code == 200

            # `linkedge cache rebuild`: every link (globex's, disabled, too) and the one live
            # domain written back, the stale records swept; both edges serve acme's domain again.
            links = int(await pg.fetchval("SELECT count(*) FROM links"))
            assert f"wrote {links + 1} cache records" in linkedge(env, "cache", "rebuild")
            assert await data.exists(*acme_keys) == len(acme_keys)
            assert await data.exists(*stale) == 0
            for edge in (cached, direct):
                for code in [*codes, "sale"]:
                    assert await get(edge, ACME, code) == (302, destinations[(ACME, code)][1])
                assert await get(edge, GLOBEX, "sale") == (404, "")
                assert (await edge.get("/robots.txt", headers={"host": GLOBEX})).status_code == 404

            # The whole cluster loses its data: the worker's heal puts the domain and its links back.
            cluster.flushall()

            async def healed() -> bool:
                return await data.exists(*acme_keys) == len(acme_keys) and await answers(
                    direct, ACME, "sale", (302, "https://acme.test/sale")
                )

            await wait_for(healed, 10, "the worker to restore acme's domain and links", *every)
            assert not await data.exists(domain_key(prefix, GLOBEX))
        finally:
            for client in (acme, globex, cached, direct):
                await client.aclose()
    await data.aclose()
    await pg.close()
