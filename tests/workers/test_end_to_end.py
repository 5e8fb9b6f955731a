"""Redirects through the real edge, rolled up by the worker: PostgreSQL holds exactly what was served."""

from __future__ import annotations

import ipaddress
import random
from collections import Counter

import asyncpg
from redis.asyncio import Redis

from tests.redirector.edge_support import ANDROID, CURL, GOOGLEBOT, IPHONE, WINDOWS, edge_client, settings_for
from tests.workers.conftest import make_world
from workers.heal import heal_once
from workers.rollup import Rollup
from workers.settings import Settings

HUMANS = {IPHONE: ("mobile", "ios"), WINDOWS: ("desktop", "windows"), ANDROID: ("mobile", "android")}


async def test_redirects_through_the_edge_are_counted_exactly(
    env: dict[str, str], settings: Settings, pg: asyncpg.Pool, redis: Redis
) -> None:
    world = await make_world(pg, n_links=6)
    await heal_once(settings, pg, redis)  # the serving cache, built from the links rows
    rng = random.Random(42)
    clicks: Counter[str] = Counter()
    bots: Counter[str] = Counter()
    countries: Counter[tuple[str, str]] = Counter()
    devices: Counter[tuple[str, str]] = Counter()
    n = 3000
    # The country header comes through a trusted proxy (from anyone else it is not believed).
    proxy = {"country_header": "cf-ipcountry", "trusted_proxies": (ipaddress.ip_network("10.0.0.1/32"),)}
    with edge_client(settings_for(env, **proxy), client=("10.0.0.1", 1)) as client:
        for _ in range(n):
            link = rng.choice(list(world.codes))
            ua = rng.choice([IPHONE, WINDOWS, ANDROID, GOOGLEBOT, CURL])
            country = rng.choice(["US", "DE", ""])
            headers = {"user-agent": ua, "cf-ipcountry": country, "referer": "https://t.co/x"}
            assert client.get(f"/{world.codes[link]}", headers=headers).status_code == 302
            if ua in HUMANS:
                clicks[link] += 1
                countries[(link, country)] += 1
                devices[(link, HUMANS[ua][0])] += 1
            else:
                bots[link] += 1
        # Redirected but never counted.
        code = next(iter(world.codes.values()))
        for _ in range(20):
            assert client.head(f"/{code}", headers={"user-agent": IPHONE}).status_code == 302
            prefetch = {"user-agent": IPHONE, "sec-purpose": "prefetch"}
            assert client.get(f"/{code}", headers=prefetch).status_code == 302
    # Leaving the client flushed the edge's buffer; now one roll-up drains the streams.
    await Rollup(settings, pg, redis).drain()

    assert sum(clicks.values()) + sum(bots.values()) == n
    for r in await pg.fetch("SELECT id, scan_count FROM links"):
        assert r["scan_count"] == clicks[str(r["id"])]
    totals = {str(r["subject_id"]): r for r in await pg.fetch("SELECT * FROM stats_totals")}
    for link in world.links:
        assert (totals[link]["clicks"], totals[link]["bots"]) == (clicks[link], bots[link])
    rows = await pg.fetch(
        "SELECT subject_id, dimension, value, sum(clicks) n FROM stats_breakdown_hourly GROUP BY 1, 2, 3"
    )
    got = {(str(r["subject_id"]), r["dimension"], r["value"]): r["n"] for r in rows}
    assert {(s, v): n for (s, d, v), n in got.items() if d == "country"} == {k: v for k, v in countries.items() if v}
    assert {(s, v): n for (s, d, v), n in got.items() if d == "device"} == {k: v for k, v in devices.items() if v}
    assert {n for (_, d, v), n in got.items() if d == "referrer" and v != "t.co"} == set()
