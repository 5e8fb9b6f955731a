"""Roll-up benchmark: events/s one worker process applies to PostgreSQL, next to the edge's redirects/s.

    python -m loadtests.rollup_bench [--events 500000] [--edge-rps 52000 | --measure-edge]

Pushes N events in the edge's encoding (one stream entry per flush of ``--per-entry`` events,
round robin over the shards), then runs one roll-up in this process (uvloop) until every
shard is drained, and prints events/s applied. The target is at least 3 times the
edge's peak redirect rate: pass the edge's rate with ``--edge-rps``, or ``--measure-edge``
to run a short wrk burst against ``redirector.app`` here (needs wrk). Uses its own
database and key prefix and removes both at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import secrets
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import uvloop
from redis.asyncio import Redis

from api.migrate import migrate
from kit.postgres import create_pool
from redirector.events import (
    BATCH_ID_FIELD,
    BLOCK_CLICK,
    CLICK,
    EVENT_FIELD,
    VIEW,
    Event,
    destination_id,
    encode_batch,
    encode_event,
)
from redirector.keys import event_stream_key
from workers.aggregate import summarize
from workers.rollup import Rollup, create_summer
from workers.settings import Settings

# Skewed like real traffic (weights), unless --uniform: then every value is equally likely.
DIMS = {
    "country": {"US": 35, "IN": 12, "DE": 8, "GB": 8, "BR": 7, "FR": 6, "JP": 5, "": 19},
    "device": {"mobile": 60, "desktop": 35, "tablet": 5},
    "os": {"ios": 30, "android": 35, "windows": 20, "macos": 10, "linux": 5},
    "browser": {"chrome": 55, "safari": 30, "firefox": 8, "edge": 7},
    "referrer": {"": 45, "instagram.com": 20, "t.co": 15, "google.com": 15, "news.ycombinator.com": 5},
    # Event version 2, as with a city and an ASN database configured: most visitors placed.
    "region": {"US|California": 20, "US|New York": 10, "IN|Maharashtra": 8, "GB|England": 8, "DE|Berlin": 6, "": 48},
    "city": {"US|California|Los Angeles": 12, "US|New York|New York": 9, "GB|England|London": 7, "": 72},
    "asn": {"7922": 20, "3320": 10, "15169": 5, "16509": 5, "": 60},
    "network": {"other": 80, "datacenter": 5, "": 15},
}
# Of link clicks only: UTM tags of the destination, and on one link in ROUTED a rule and a split.
UTM = {"": 70, "newsletter\temail\tspring": 15, "twitter\tsocial\tlaunch": 10, "ads\tcpc\tspring": 5}
ROUTED = 5
TARGET = 3  # the roll-up keeps up with this many times the edge's peak rate


def make_lines(
    n: int,
    links: list[str],
    team: str,
    pages: list[str],
    blocks: list[str],
    *,
    uniform: bool = False,
    rate: float = 50_000,
    seed: int = 7,
) -> list[str]:
    """85 % link clicks, 10 % page views, 5 % block clicks; 5 % bots; 100k visitors.

    Timestamps rise as in a live stream, ``rate`` events per second up to now. Link popularity
    follows Zipf's law (a few hot links) unless ``uniform``.
    """
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    visitors = [f"{rng.getrandbits(64):016x}" for _ in range(100_000)]

    def column(values: dict[str, int] | list[str]) -> list[str]:
        names = list(values)
        weights = None if uniform or isinstance(values, list) else list(values.values())  # type: ignore[union-attr]
        return rng.choices(names, weights=weights, k=n)

    dims = {name: column(values) for name, values in DIMS.items()}
    utms = [u.split("\t") if u else ["", "", ""] for u in column(UTM)]
    link_weights = None if uniform else [1 / (i + 1) ** 1.1 for i in range(len(links))]
    link_ids = rng.choices(links, weights=link_weights, k=n)
    start = now - int(n / rate * 1000)
    out = []
    for i in range(n):
        roll = rng.random()
        common = {k: v[i] for k, v in dims.items()}
        ts = start + int(i / rate * 1000)
        visitor, bot = rng.choice(visitors), rng.random() < 0.05
        if roll < 0.85:
            link = link_ids[i]
            routed = int(link[:8], 16) % ROUTED == 0
            arm = rng.randrange(2) if routed else 0
            ev = Event(
                CLICK,
                ts,
                team,
                link_id=link,
                visitor=visitor,
                bot=bot,
                source="direct",
                rule="0" if routed else "",
                variant=f"0.{arm}" if routed else "",
                destination=destination_id(f"https://example.com/{link}/{arm}"),
                utm_source=utms[i][0],
                utm_medium=utms[i][1],
                utm_campaign=utms[i][2],
                **common,
            )
        elif roll < 0.95:
            ev = Event(VIEW, ts, team, page_id=rng.choice(pages), visitor=visitor, bot=bot, **common)
        else:
            j = rng.randrange(len(blocks))
            ev = Event(
                BLOCK_CLICK, ts, team, page_id=pages[j % len(pages)], block_id=blocks[j], visitor=visitor, bot=bot
            )
        out.append(encode_event(ev))
    return out


async def push(redis: Redis, prefix: str, lines: list[str], shards: int, per_entry: int) -> int:
    """XADD as the edge does: one entry per flush, with a batch id, shards round robin."""
    entries = 0
    run = secrets.token_hex(4)
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(0, len(lines), per_entry):
            fields = {EVENT_FIELD: encode_batch(lines[i : i + per_entry]), BATCH_ID_FIELD: f"{run}-{entries:x}"}
            pipe.xadd(event_stream_key(prefix, entries % shards), fields)  # type: ignore[arg-type]
            entries += 1
            if len(pipe) >= 200:
                await pipe.execute()
        await pipe.execute()
    return entries


async def run(args: argparse.Namespace) -> float:
    base = args.database_url
    name = f"linkedge_bench_{secrets.token_hex(3)}"
    db_url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    prefix = f"bench{secrets.token_hex(3)}:"
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    redis = Redis.from_url(args.redis_url)
    pg: asyncpg.Pool | None = None
    try:
        conn = await asyncpg.connect(db_url)
        await migrate(conn)
        team = str(uuid.uuid4())
        links = [str(uuid.uuid4()) for _ in range(args.links)]
        await conn.execute("INSERT INTO teams (id, name) VALUES ($1, 'bench')", team)
        await conn.executemany(
            "INSERT INTO links (id, team_id, code, url, destination) VALUES ($1, $2, $3, 'https://e.x', 'https://e.x')",
            [(link, team, f"b{i}") for i, link in enumerate(links)],
        )
        await conn.close()
        pages = [str(uuid.uuid4()) for _ in range(50)]
        blocks = [str(uuid.uuid4()) for _ in range(200)]
        print(f"generating {args.events:,} events ...", flush=True)
        lines = make_lines(args.events, links, team, pages, blocks, uniform=args.uniform)
        entries = await push(redis, prefix, lines, args.shards, args.per_entry)
        print(f"pushed {entries:,} stream entries ({args.per_entry} events each) over {args.shards} shards", flush=True)

        settings = Settings(
            database_url=db_url,
            redis_url=args.redis_url,
            key_prefix=prefix,
            event_shards=args.shards,
            rollup_batch=args.batch,
            metrics_port=0,
            rollup_sum_processes=args.sum_processes,
        )
        pg = await create_pool(db_url, min_size=1, max_size=4)
        summer = create_summer(settings)
        if summer is not None:  # start them before the clock: a worker does so at start-up
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(summer, summarize, []) for _ in range(args.sum_processes)))
        rollup = Rollup(settings, pg, redis, summer=summer)
        await rollup.balance(greedy=True)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started, cpu_started = time.perf_counter(), time.process_time()
        await rollup.roll(asyncio.Event(), until_idle=True)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        if summer is not None:
            summer.shutdown(wait=True)  # its CPU time is counted once it has exited
            done = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu += done.ru_utime + done.ru_stime - children.ru_utime - children.ru_stime
        await rollup.release_all()
        sample = rollup.metrics.registry.get_sample_value
        applied = sum(sample("linkedge_rollup_events_total", {"kind": k}) or 0 for k in ("c", "v", "b"))
        clicks = await pg.fetchval("SELECT sum(scan_count) FROM links")
        rate = applied / elapsed
        print(
            f"applied {int(applied):,} events in {elapsed:.2f} s: {rate:,.0f} events/s "
            f"({sample('linkedge_rollup_batches_total') or 0:.0f} transactions; worker CPU {cpu:.2f} s "
            f"{f'(with {args.sum_processes} summing processes) ' if summer is not None else ''}= "
            f"{applied / cpu:,.0f} events per CPU-second; links.scan_count sum {clicks:,})"
        )
        return rate
    finally:
        if pg is not None:
            await pg.close()
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await redis.unlink(*keys)
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def measure_edge(redis_url: str, seconds: float) -> float:
    """A short wrk burst against the edge (cached redirects, 2 workers, 64 connections)."""
    from loadtests import harness

    client = harness.connect_redis(redis_url)
    prefix = harness.new_prefix()
    server = harness.Server(
        "edge", "redirector.app:main", workers=2, env={"REDIS_URL": redis_url, "KEY_PREFIX": prefix}
    )
    try:
        codes = harness.seed_links(client, prefix, 1000)
        server.start()
        paths = harness.write_paths(server.workdir, codes)
        result = harness.run_wrk(harness.ensure_wrk(), server.url, paths, seconds=seconds, connections=64, threads=2)
        return result.rps
    finally:
        server.cleanup()
        harness.delete_prefix(client, prefix)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--per-entry", type=int, default=250, help="events per stream entry (one edge flush)")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--links", type=int, default=1000)
    parser.add_argument(
        "--uniform", action="store_true", help="uniform links and values (worst case) instead of skewed"
    )
    parser.add_argument("--batch", type=int, default=Settings.rollup_batch, help="stream entries per transaction")
    parser.add_argument(
        "--sum-processes",
        type=int,
        default=Settings.rollup_sum_processes,
        help="processes summing entries, as the worker's ROLLUP_SUM_PROCESSES (0: sum in the worker)",
    )
    parser.add_argument("--edge-rps", type=float, default=0.0, help="the edge's peak redirects/s, measured elsewhere")
    parser.add_argument("--measure-edge", action="store_true", help="measure the edge here with wrk first")
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    edge = args.edge_rps
    if args.measure_edge:
        edge = measure_edge(args.redis_url, 5.0)
        print(f"edge: {edge:,.0f} redirects/s (cached, 2 workers, 64 connections)")
    rate = uvloop.run(run(args))
    if edge:
        verdict = "OK" if rate >= TARGET * edge else "BELOW TARGET"
        print(
            f"roll-up {rate:,.0f} events/s vs edge {edge:,.0f} redirects/s: {rate / edge:.2f}x "
            f"(target >= {TARGET}x) {verdict}"
        )
    else:
        print(
            f"roll-up {rate:,.0f} events/s "
            f"(pass --edge-rps or --measure-edge for the ratio; target >= {TARGET}x the edge)"
        )


if __name__ == "__main__":
    main()
