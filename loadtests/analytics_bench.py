"""Team-wide analytics benchmark: ``GET /api/v1/analytics`` over 30 days of a big team, p50/p95.

    python -m loadtests.analytics_bench [--quick] [--links 10000] [--clicks 10000000] [--days 90]

Creates a private database on the server (``linkedge_bench_<pid>``, dropped at the end), migrates
it, and fills the roll-up's tables for one team (business plan) with SQL ``generate_series``:
``--clicks`` human clicks over ``--days`` days for ``--links`` links, each link-hour having clicks
with probability ``--fill`` (0.375: about 8.1M link-hours for 10,000 links over 90 days), spread
over the dimension values with fixed weights (50 countries, 300 cities, a few devices, OSes,
browsers, referrers and sources). ``stats_daily`` and ``stats_team_daily`` are then built by the
backfill statements of migration 008, as an upgrade would. Per-link breakdowns are not generated:
the two timed queries do not read them.

Then it starts the real API (``redirector.serve api.app:main``, one worker) on that database and
times, through HTTP with a keep-alive client, ``group_by=link`` and ``group_by=country`` over the
last 30 days (a window that starts and ends mid-day, so both the daily and the hourly tables
answer), printing p50 and p95 next to the target (p95 <= 200 ms). ``--quick``: 1,000 links and
1M clicks. Redis: ``REDIS_URL``; PostgreSQL: ``DATABASE_URL`` (a database to connect to, to
create the private one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from api.migrate import migrate
from api.teams import create_key, create_team
from loadtests import harness

TARGET_P95_MS = 200.0
MIGRATION = Path(__file__).resolve().parent.parent / "api" / "migrations" / "008_team_analytics.sql"


def _weights(names: list[str], skew: float = 1.0) -> list[float]:
    raw = [1 / (i + 1) ** skew for i in range(len(names))]
    return [w / sum(raw) for w in raw]


def dimension_values() -> tuple[list[str], list[str], list[float]]:
    """(dimension, value, share of the hour's clicks) for the team-wide rows."""
    dims: dict[str, list[str]] = {
        "country": [f"C{i:02d}" for i in range(50)],
        "device": ["mobile", "desktop", "tablet"],
        "os": ["ios", "android", "windows", "macos", "linux"],
        "browser": ["chrome", "safari", "firefox", "edge"],
        "referrer": ["", "instagram.com", "t.co", "google.com", "news.ycombinator.com"],
        "source": ["direct", "qr", "bio"],
        "city": [f"C{i % 50:02d}|Region {i % 7}|City {i}" for i in range(300)],
    }
    out: tuple[list[str], list[str], list[float]] = ([], [], [])
    for dim, values in dims.items():
        share = 0.6 if dim == "city" else 1.0  # a sparse dimension: not every click has a city
        for value, w in zip(values, _weights(values), strict=True):
            out[0].append(dim)
            out[1].append(value)
            out[2].append(w * share)
    return out


async def fill(conn: asyncpg.Connection, team: uuid.UUID, args: argparse.Namespace) -> int:
    """Load the tables; returns the clicks loaded."""
    hours = args.days * 24
    per_row = args.clicks / (args.links * hours * args.fill)
    base, extra = int(per_row), per_row - int(per_row)
    await conn.execute("SET synchronous_commit = off")
    await conn.execute(
        "INSERT INTO links (id, team_id, code, url, destination) "
        "SELECT gen_random_uuid(), $1, 'b' || i, 'https://example.com/' || i, 'https://example.com/' || i "
        "FROM generate_series(1, $2) i",
        team,
        args.links,
    )
    started = time.perf_counter()
    await conn.execute(
        """
        INSERT INTO stats_hourly (subject_id, bucket, team_id, clicks)
        SELECT l.id, h, $1, $4 + (random() < $5)::int
        FROM generate_series(date_trunc('hour', now()) - make_interval(hours => $2), date_trunc('hour', now()),
                             interval '1 hour') h
        CROSS JOIN LATERAL (SELECT id FROM links) l  -- hour by hour, in time order as the roll-up writes them
        WHERE random() < $3
        """,
        team,
        hours,
        args.fill,
        base,
        extra,
    )
    print(f"  stats_hourly: {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    dims, values, shares = dimension_values()
    await conn.execute(
        """
        INSERT INTO stats_team_hourly (team_id, dimension, bucket, value, clicks)
        SELECT $1, d.dim, t.bucket, d.value, round(t.total * d.share)::bigint
        FROM (SELECT bucket, sum(clicks) AS total FROM stats_hourly GROUP BY bucket) t
        CROSS JOIN unnest($2::text[], $3::text[], $4::float8[]) AS d(dim, value, share)
        WHERE round(t.total * d.share) > 0
        """,
        team,
        dims,
        values,
        shares,
    )
    # The backfill of migration 008 builds the daily tables from the hourly ones, as an upgrade does.
    await conn.execute("-- Backfill" + MIGRATION.read_text().split("-- Backfill", 1)[1])
    print(f"  team rows and daily tables: {time.perf_counter() - started:.1f} s", flush=True)
    for table in ("stats_hourly", "stats_daily", "stats_team_hourly", "stats_team_daily", "links"):
        await conn.execute(f"VACUUM ANALYZE {table}")
    clicks: int = await conn.fetchval("SELECT sum(clicks) FROM stats_hourly")
    return clicks


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def time_queries(url: str, key: str, requests: int) -> dict[str, list[float]]:
    start = datetime.now(UTC) - timedelta(days=30)
    window = {"from": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
    cases = {
        "group_by=link": {**window, "group_by": "link"},
        "group_by=country": {**window, "group_by": "country"},
    }
    out: dict[str, list[float]] = {name: [] for name in cases}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for name, params in cases.items():
            for n in range(requests + 3):  # the first three warm the caches and the pool
                began = time.perf_counter()
                response = client.get("/api/v1/analytics", params=params)
                elapsed = (time.perf_counter() - began) * 1000
                if response.status_code != 200:
                    raise harness.BenchError(f"{name}: {response.status_code} {response.text[:300]}")
                if n >= 3:
                    out[name].append(elapsed)
            body = response.json()["data"]
            print(f"  {name}: {len(body['rows'])} rows, {body['totals']['clicks']:,} clicks in the window", flush=True)
    return out


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    base = args.database_url
    name = f"linkedge_bench_{os.getpid()}"
    db_url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    prefix = harness.new_prefix()
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    server: harness.Server | None = None
    try:
        conn = await asyncpg.connect(db_url)
        try:
            await migrate(conn)
            team = await create_team(conn, "bench", "business")
            key = await create_key(conn, team.id, "links:analytics:read")
            print(f"loading {args.clicks:,} clicks over {args.days} days for {args.links:,} links ...", flush=True)
            started = time.perf_counter()
            clicks = await fill(conn, team.id, args)
            rows = {
                t: await conn.fetchval(f"SELECT count(*) FROM {t}")
                for t in ("stats_hourly", "stats_daily", "stats_team_hourly", "stats_team_daily")
            }
        finally:
            await conn.close()
        print(
            f"loaded {clicks:,} clicks in {time.perf_counter() - started:.0f} s: "
            + ", ".join(f"{t} {n:,} rows" for t, n in rows.items()),
            flush=True,
        )
        env = {"DATABASE_URL": db_url, "REDIS_URL": args.redis_url, "KEY_PREFIX": prefix}
        server = harness.Server("api", "api.app:main", workers=1, env=env)
        server.start()
        return await asyncio.to_thread(time_queries, server.url, key, args.requests)
    finally:
        if server is not None:
            server.cleanup()
        client = harness.connect_redis(args.redis_url)
        harness.delete_prefix(client, prefix)
        client.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 links and 1M clicks")
    parser.add_argument("--links", type=int, default=10_000)
    parser.add_argument("--clicks", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--fill", type=float, default=0.375, help="share of link-hours with clicks")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per query")
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if args.quick:
        args.links, args.clicks = 1_000, 1_000_000
    timings = asyncio.run(run(args))
    print(f"\n{'query (30 days)':<20} {'p50 ms':>8} {'p95 ms':>8}   target p95")
    for name, samples in timings.items():
        p95 = percentile(samples, 95)
        verdict = "OK" if p95 <= TARGET_P95_MS else "ABOVE TARGET"
        print(f"{name:<20} {statistics.median(samples):>8.1f} {p95:>8.1f}   <= {TARGET_P95_MS:.0f} ms {verdict}")


if __name__ == "__main__":
    main()
