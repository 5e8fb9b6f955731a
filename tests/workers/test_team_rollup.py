"""The roll-up's summary tables for team-wide analytics (migration 008): stats_daily per subject and
UTC day, stats_team_hourly / stats_team_daily per team, dimension value and hour / day. Written in
the same transaction as the hourly counters, so exactly once like them."""

from __future__ import annotations

import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from redirector.events import BATCH_ID_FIELD, CLICK, DENSE, DIMENSION_FIELDS, DIMENSIONS, EVENT_FIELD, VIEW, Event
from redirector.keys import event_stream_key
from tests.workers.conftest import BASE_MS, HOUR_MS, expected, lines, make_world, push, random_events
from workers.aggregate import Aggregator
from workers.queries import apply_batch
from workers.rollup import Rollup
from workers.settings import Settings

DAY_MS = 24 * HOUR_MS
MIGRATION = Path(__file__).resolve().parents[2] / "api" / "migrations" / "008_team_analytics.sql"

TeamKey = tuple[str, str, int, str]  # team, dimension, hour or day start (ms), value


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def expected_team(events: Iterable[Event]) -> tuple[Counter[TeamKey], Counter[TeamKey]]:
    """(team, dimension, hour, value) -> human link clicks / page views, as the rules say: dense
    dimensions count their empty value too, sparse ones only a value."""
    clicks: Counter[TeamKey] = Counter()
    views: Counter[TeamKey] = Counter()
    for e in events:
        if e.bot or not ((e.kind == CLICK and e.link_id) or e.kind == VIEW):
            continue
        target = views if e.kind == VIEW else clicks
        hour = e.ts_ms - e.ts_ms % HOUR_MS
        for i, dim in enumerate(DIMENSIONS):
            value = getattr(e, DIMENSION_FIELDS[dim])
            if i < DENSE or value:
                target[(e.team_id, dim, hour, value)] += 1
    return clicks, views


async def team_tables(pg: asyncpg.Pool) -> tuple[dict[TeamKey, list[int]], dict[tuple[str, str, date, str], list[int]]]:
    hourly = {
        (str(r["team_id"]), r["dimension"], int(r["bucket"].timestamp() * 1000), r["value"]): [r["clicks"], r["views"]]
        for r in await pg.fetch("SELECT * FROM stats_team_hourly")
    }
    daily = {
        (str(r["team_id"]), r["dimension"], r["day"], r["value"]): [r["clicks"], r["views"]]
        for r in await pg.fetch("SELECT * FROM stats_team_daily")
    }
    return hourly, daily


async def assert_summaries(pg: asyncpg.Pool, events: list[Event]) -> None:
    x = expected(events)
    days: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0, 0])
    for (subject, hour), counts in x.hourly.items():
        for i, n in enumerate(counts):
            days[(subject, _day(hour))][i] += n
    daily = {
        (str(r["subject_id"]), r["day"]): [r["clicks"], r["views"], r["bots"]]
        for r in await pg.fetch("SELECT * FROM stats_daily")
    }
    assert daily == dict(days)
    clicks, views = expected_team(events)
    want_hourly = {k: [clicks[k], views[k]] for k in clicks.keys() | views.keys()}
    want_daily: dict[tuple[str, str, date, str], list[int]] = defaultdict(lambda: [0, 0])
    for (team, dim, hour, value), (c, v) in want_hourly.items():
        want_daily[(team, dim, _day(hour), value)][0] += c
        want_daily[(team, dim, _day(hour), value)][1] += v
    got_hourly, got_daily = await team_tables(pg)
    assert got_hourly == want_hourly
    assert got_daily == dict(want_daily)


async def test_the_summary_tables_hold_every_event_once_across_a_day_boundary(
    settings: Settings, pg: asyncpg.Pool, redis: Redis
) -> None:
    world = await make_world(pg)
    events = random_events(world, 5000, seed=11, hours=8)  # 20:00 to 04:00 UTC: two days
    assert len({_day(e.ts_ms) for e in events}) == 2
    await push(redis, settings.key_prefix, lines(events))
    await Rollup(settings, pg, redis).drain()
    await assert_summaries(pg, events)
    # Link clicks and page views never mix: the team-wide sums match the per-subject ones.
    link_clicks = await pg.fetchval(
        "SELECT sum(clicks) FROM stats_daily WHERE subject_id = ANY($1::uuid[])", list(world.links)
    )
    by_source = await pg.fetchval("SELECT sum(clicks) FROM stats_team_daily WHERE dimension = 'source'")
    assert by_source == link_clicks
    page_views = await pg.fetchval("SELECT sum(views) FROM stats_daily")
    assert await pg.fetchval("SELECT sum(views) FROM stats_team_hourly WHERE dimension = 'country'") == page_views


async def test_a_replayed_batch_does_not_double_the_summaries(
    settings: Settings, pg: asyncpg.Pool, redis: Redis
) -> None:
    world = await make_world(pg)
    events = random_events(world, 2000, seed=12, hours=30)
    await push(redis, settings.key_prefix, lines(events), shards=1)
    entries = await redis.xrange(event_stream_key(settings.key_prefix, 0))
    agg = Aggregator()
    for _, fields in entries:
        agg.add_entry(fields[EVENT_FIELD])
    batch = agg.finish()
    batch.batch_ids = [fields[BATCH_ID_FIELD].decode() for _, fields in entries]  # as workers.rollup records them
    last = entries[-1][0].decode()
    async with pg.acquire() as conn:
        assert await apply_batch(conn, {0: "0-0"}, {0: last}, batch)
        assert not await apply_batch(conn, {0: "0-0"}, {0: last}, batch)  # a stale worker's copy
        # The same edge batches under a fresh watermark (an XADD retried into another shard): refused too.
        assert not await apply_batch(conn, {0: last}, {0: last + "1"}, batch)
    await Rollup(settings, pg, redis).drain()  # the entries are still in the stream: skipped
    await assert_summaries(pg, events)


async def test_subjects_without_a_team_are_left_out(settings: Settings, pg: asyncpg.Pool, redis: Redis) -> None:
    link = str(uuid.uuid4())
    events = [Event(CLICK, BASE_MS + i, "", link_id=link, country="US", visitor=f"{i:016x}") for i in range(5)]
    await push(redis, settings.key_prefix, lines(events))
    await Rollup(settings, pg, redis).drain()
    assert await pg.fetchval("SELECT clicks FROM stats_hourly WHERE subject_id = $1", link) == 5
    assert await pg.fetchval("SELECT count(*) FROM stats_daily") == 0
    assert await pg.fetchval("SELECT count(*) FROM stats_team_hourly") == 0


async def test_the_summary_tables_allow_exactly_the_dimensions(pg: asyncpg.Pool) -> None:
    for table in ("stats_team_hourly", "stats_team_daily"):
        check = await pg.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass "
            "AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%dimension%'",
            table,
        )
        assert re.findall(r"'(\w+)'::text", check) == list(DIMENSIONS), table


async def test_the_migration_backfills_the_summaries_from_the_hourly_tables(pg: asyncpg.Pool) -> None:
    """Roll-ups from before migration 008: the migration's backfill statements fill the new tables."""
    team, link, page = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    late = datetime(2026, 11, 1, 23, tzinfo=UTC)
    for subject, clicks, views in ((link, 7, 0), (page, 2, 5)):
        await pg.execute(
            "INSERT INTO stats_totals (subject_id, team_id, clicks, views) VALUES ($1, $2, $3, $4)",
            subject,
            team,
            2 * clicks,
            2 * views,
        )
        for bucket in (late, late + timedelta(hours=1)):  # 23:00 and 00:00: two UTC days
            await pg.execute(
                "INSERT INTO stats_hourly (subject_id, bucket, team_id, clicks, views, bots) "
                "VALUES ($1, $2, $3, $4, $5, 1)",
                subject,
                bucket,
                team,
                clicks,
                views,
            )
            await pg.execute(
                "INSERT INTO stats_breakdown_hourly (subject_id, bucket, dimension, value, clicks) "
                "VALUES ($1, $2, 'country', 'US', $3)",
                subject,
                bucket,
                views or clicks,
            )
    await pg.execute("INSERT INTO stats_hourly (subject_id, bucket, clicks) VALUES ($1, $2, 3)", uuid.uuid4(), late)
    backfill = "-- Backfill" + MIGRATION.read_text().split("-- Backfill", 1)[1]
    async with pg.acquire() as conn:
        await conn.execute(backfill)

    daily = {
        (r["subject_id"], r["day"]): (r["team_id"], r["clicks"], r["views"], r["bots"])
        for r in await pg.fetch("SELECT * FROM stats_daily")
    }
    nov1, nov2 = date(2026, 11, 1), date(2026, 11, 2)
    assert daily == {
        (link, nov1): (team, 7, 0, 1),
        (link, nov2): (team, 7, 0, 1),
        (page, nov1): (team, 2, 5, 1),
        (page, nov2): (team, 2, 5, 1),
    }
    hourly, days = await team_tables(pg)
    hour_ms = int(late.timestamp() * 1000)
    assert hourly == {
        (str(team), "country", hour_ms, "US"): [7, 5],
        (str(team), "country", hour_ms + HOUR_MS, "US"): [7, 5],
    }
    assert days == {(str(team), "country", nov1, "US"): [7, 5], (str(team), "country", nov2, "US"): [7, 5]}
