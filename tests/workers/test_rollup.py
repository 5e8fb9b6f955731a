"""The roll-up applies every event exactly once, split across every counter."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import asyncpg
import pytest
from redis.asyncio import Redis

from kit.sketch import decode_sketch
from redirector.events import CLICK, DIMENSIONS, EVENT_FIELD, Event, encode_batch, encode_event
from redirector.keys import event_stream_key
from tests.workers.conftest import BASE_MS, Expected, expected, lines, make_world, push, random_events
from workers.aggregate import Aggregator
from workers.queries import apply_batch, load_watermarks
from workers.rollup import Rollup, create_summer
from workers.settings import Settings


async def assert_tables(pg: asyncpg.Pool, x: Expected) -> None:
    hourly = {
        (str(r["subject_id"]), int(r["bucket"].timestamp() * 1000)): r
        for r in await pg.fetch("SELECT * FROM stats_hourly")
    }
    assert {k: [r["clicks"], r["views"], r["bots"]] for k, r in hourly.items()} == dict(x.hourly)
    for key, row in hourly.items():
        assert decode_sketch(row["visitors"]).count() == len(x.visitors.get(key, ())), key
    breakdowns = {
        (str(r["subject_id"]), int(r["bucket"].timestamp() * 1000), r["dimension"], r["value"]): r["clicks"]
        for r in await pg.fetch("SELECT * FROM stats_breakdown_hourly")
    }
    assert breakdowns == dict(x.breakdowns)
    totals = {
        str(r["subject_id"]): [r["clicks"], r["views"], r["bots"]] for r in await pg.fetch("SELECT * FROM stats_totals")
    }
    assert totals == dict(x.totals)
    for r in await pg.fetch("SELECT id, scan_count, last_scan_at FROM links"):
        link = str(r["id"])
        assert r["scan_count"] == x.scans.get(link, 0)
        if link in x.last_scan:
            assert int(r["last_scan_at"].timestamp() * 1000) == x.last_scan[link]
    forms = {
        str(r["page_id"]): r["n"] for r in await pg.fetch("SELECT page_id, count(*) n FROM form_submissions GROUP BY 1")
    }
    assert forms == dict(x.forms)


@pytest.mark.parametrize("summing", [0, 1, 2], ids=["in the worker", "in a summing process", "in two, merged"])
async def test_every_event_lands_in_every_counter(
    settings: Settings, pg: asyncpg.Pool, redis: Redis, summing: int
) -> None:
    world = await make_world(pg)
    events = random_events(world, 6000)
    bad = ["garbage", "2\tc\t1\tx", f"1\tc\t{BASE_MS}\tteam\tnot-a-uuid", f"1\tv\t{BASE_MS}\t{world.teams[0]}"]
    await push(redis, settings.key_prefix, [*lines(events), *bad])

    settings = dataclasses.replace(settings, rollup_sum_processes=summing)
    summer = create_summer(settings)
    try:
        rollup = Rollup(settings, pg, redis, summer=summer)
        consumed = await rollup.drain()
        assert rollup.summer is summer  # it did not fall back
    finally:
        if summer is not None:
            summer.shutdown()

    assert consumed > 0
    await assert_tables(pg, expected(events))
    assert rollup.metrics.registry.get_sample_value("linkedge_rollup_bad_lines_total") == len(bad)
    form = await pg.fetchrow("SELECT data, visitor FROM form_submissions ORDER BY id LIMIT 1")
    assert form["data"]["email"].endswith("@example.com") and len(form["visitor"]) == 16
    for shard in range(settings.event_shards):
        assert await redis.xlen(event_stream_key(settings.key_prefix, shard)) == 0


async def test_a_replayed_batch_is_not_applied_twice(settings: Settings, pg: asyncpg.Pool, redis: Redis) -> None:
    world = await make_world(pg)
    events = random_events(world, 2000, seed=2)
    await push(redis, settings.key_prefix, lines(events), shards=1)
    entries = await redis.xrange(event_stream_key(settings.key_prefix, 0))
    agg = Aggregator()
    for _, fields in entries:
        agg.add_entry(fields[EVENT_FIELD])
    last = entries[-1][0].decode()
    async with pg.acquire() as conn:
        assert await apply_batch(conn, {0: "0-0"}, {0: last}, agg.finish())
        # The same batch again (a worker that read before the first commit): refused.
        assert not await apply_batch(conn, {0: "0-0"}, {0: last}, agg.finish())
        assert await load_watermarks(conn, [0]) == {0: last}
    # Crash after commit, before the trim: the entries are still in the stream. A fresh worker skips them.
    assert await redis.xlen(event_stream_key(settings.key_prefix, 0)) == len(entries)
    await Rollup(settings, pg, redis).drain()
    await assert_tables(pg, expected(events))
    assert await redis.xlen(event_stream_key(settings.key_prefix, 0)) == 0


async def test_crash_between_commit_and_trim(settings: Settings, pg: asyncpg.Pool, redis: Redis) -> None:
    class CrashBeforeTrim(Rollup):
        async def _trim(self, marks: dict[int, str]) -> None:
            raise SystemExit("killed after commit")

    world = await make_world(pg)
    events = random_events(world, 1500, seed=3)
    await push(redis, settings.key_prefix, lines(events))
    crashing = CrashBeforeTrim(settings, pg, redis)
    await crashing.balance(greedy=True)
    try:
        await crashing.step()
    except SystemExit:
        pass
    await crashing.release_all()
    await Rollup(settings, pg, redis).drain()
    await assert_tables(pg, expected(events))


async def test_unknown_subjects_and_deleted_links_do_not_block(
    settings: Settings, pg: asyncpg.Pool, redis: Redis
) -> None:
    world = await make_world(pg, n_links=1)
    link = next(iter(world.links))
    gone = "00000000-0000-4000-8000-000000000001"  # no links row: counted in stats, no scan_count to bump
    events = [
        Event(CLICK, BASE_MS + i, world.teams[0], link_id=link if i % 2 else gone, visitor=f"{i:016x}")
        for i in range(10)
    ]
    await push(redis, settings.key_prefix, lines(events))
    await Rollup(settings, pg, redis).drain()
    assert await pg.fetchval("SELECT scan_count FROM links WHERE id = $1", link) == 5
    assert await pg.fetchval("SELECT clicks FROM stats_totals WHERE subject_id = $1", gone) == 5


async def test_visitor_sketch_merges_across_batches(settings: Settings, pg: asyncpg.Pool, redis: Redis) -> None:
    world = await make_world(pg, n_links=1)
    link, team = next(iter(world.links.items()))
    prefix = settings.key_prefix
    rollup = Rollup(settings, pg, redis)
    # 3 batches of 1000 visitors, half of each batch seen before: 2000 distinct, past the exact limit.
    for b in range(3):
        ids = range(b * 500, b * 500 + 1000)
        evs = [
            Event(CLICK, BASE_MS + 1, team, link_id=link, visitor=hashlib.blake2b(b"%d" % v, digest_size=8).hexdigest())
            for v in ids
        ]
        await redis.xadd(event_stream_key(prefix, 0), {EVENT_FIELD: encode_batch(encode_event(e) for e in evs)})
        await rollup.drain()
    blob = await pg.fetchval("SELECT visitors FROM stats_hourly WHERE subject_id = $1", link)
    assert abs(decode_sketch(blob).count() - 2000) <= 2000 * 0.05
    assert await pg.fetchval("SELECT clicks FROM stats_hourly WHERE subject_id = $1", link) == 3000


async def test_a_batch_appended_twice_is_applied_once(settings: Settings, pg: asyncpg.Pool, redis: Redis) -> None:
    """The edge retries an XADD whose reply was lost: the same batch id lands twice, maybe in two shards."""
    world = await make_world(pg, n_links=2)
    events = random_events(world, 300, seed=8)
    payload = encode_batch(lines(events))
    stream = [event_stream_key(settings.key_prefix, s) for s in range(settings.event_shards)]
    await redis.xadd(stream[0], {EVENT_FIELD: payload, b"b": b"edge-1"})
    await redis.xadd(stream[3], {EVENT_FIELD: payload, b"b": b"edge-1"})
    rollup = Rollup(settings, pg, redis)
    await rollup.drain()
    await redis.xadd(stream[5], {EVENT_FIELD: payload, b"b": b"edge-1"})  # a late copy
    await rollup.drain()
    await assert_tables(pg, expected(events))
    assert rollup.metrics.registry.get_sample_value("linkedge_rollup_duplicate_entries_total") == 2
    assert await pg.fetchval("SELECT count(*) FROM rollup_batches") == 1


async def test_the_schema_allows_exactly_the_dimensions(pg: asyncpg.Pool) -> None:
    check = await pg.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'stats_breakdown_hourly'::regclass "
        "AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%dimension%'"
    )
    assert re.findall(r"'(\w+)'::text", check) == list(DIMENSIONS)


async def test_orphan_visits_are_counted_per_domain_hour_and_kind_once(
    settings: Settings, pg: asyncpg.Pool, redis: Redis
) -> None:
    from uuid import uuid4

    from redirector.events import ORPHAN, ORPHAN_NOT_FOUND, ORPHAN_ROOT

    team, domain, gone = uuid4(), uuid4(), str(uuid4())
    await pg.execute("INSERT INTO teams (id, name) VALUES ($1, 'orphans')", team)
    await pg.execute(
        "INSERT INTO domains (id, team_id, hostname, challenge_token) VALUES ($1, $2, 'go.o.test', 't')", domain, team
    )

    def visit(kind: str, at: int, *, bot: bool = False, on: str = str(domain)) -> str:
        return encode_event(Event(ORPHAN, at, str(team), bot=bot, extra=kind, domain_id=on))

    hour = 3_600_000
    batch = [visit(ORPHAN_ROOT, BASE_MS)] * 3 + [visit(ORPHAN_NOT_FOUND, BASE_MS + 1)] * 2
    batch += [visit(ORPHAN_NOT_FOUND, BASE_MS + hour), visit(ORPHAN_ROOT, BASE_MS, bot=True)]
    batch += [visit(ORPHAN_ROOT, BASE_MS, on=gone)]  # a domain deleted meanwhile: dropped, not an error
    bad = [visit("sideways", BASE_MS), visit(ORPHAN_ROOT, BASE_MS, on="not-a-uuid")]
    await push(redis, settings.key_prefix, [*batch, *bad])

    rollup = Rollup(settings, pg, redis)
    await rollup.drain()
    await rollup.drain()  # nothing is counted twice

    rows = await pg.fetch("SELECT hour, kind, visits FROM domain_orphan_hourly WHERE domain_id = $1", domain)
    start = BASE_MS - BASE_MS % hour
    got = {(int(r["hour"].timestamp() * 1000) - start, r["kind"]): r["visits"] for r in rows}
    assert got == {(0, ORPHAN_ROOT): 3, (0, ORPHAN_NOT_FOUND): 2, (hour, ORPHAN_NOT_FOUND): 1}
    assert rollup.metrics.registry.get_sample_value("linkedge_rollup_bad_lines_total") == len(bad)
