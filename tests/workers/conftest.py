"""Fixtures and helpers for the worker tests: real Redis and PostgreSQL, events in the edge's encoding."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis

from kit.postgres import create_pool
from redirector.events import (
    BATCH_ID_FIELD,
    BLOCK_CLICK,
    CLICK,
    DENSE,
    DIMENSION_FIELDS,
    DIMENSIONS,
    EVENT_FIELD,
    FORM,
    VIEW,
    Event,
    encode_batch,
    encode_event,
)
from redirector.keys import event_stream_key
from workers.settings import Settings

HOUR_MS = 3_600_000
BASE_MS = 1_780_000_000_000 - 1_780_000_000_000 % HOUR_MS  # 2026-05-28T20:00:00Z


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(
        {**env, "WORKER_METRICS_PORT": "0", "ROLLUP_IDLE_MS": "20", "ROLLUP_LEASE_MS": "2000", "ROLLUP_BATCH": "50"}
    )


@pytest.fixture
async def pg(env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(env["DATABASE_URL"], min_size=0, max_size=12)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def redis(env: dict[str, str]) -> AsyncIterator[Redis]:
    client = Redis.from_url(env["REDIS_URL"])
    try:
        yield client
    finally:
        await client.aclose()


@dataclass
class World:
    """Teams, links, pages and blocks with known ids (rows exist for teams and links)."""

    teams: list[str]
    links: dict[str, str]  # link id -> team id
    pages: dict[str, str]  # page id -> team id
    blocks: dict[str, str]  # block id -> page id
    codes: dict[str, str] = field(default_factory=dict)  # link id -> short code


async def make_world(pg: asyncpg.Pool, n_links: int = 6) -> World:
    teams = [str(uuid.uuid4()) for _ in range(2)]
    links: dict[str, str] = {}
    codes: dict[str, str] = {}
    for i, team in enumerate(teams):
        await pg.execute("INSERT INTO teams (id, name) VALUES ($1, $2)", team, f"team-{i}-{team[:8]}")
    for i in range(n_links):
        link, team = str(uuid.uuid4()), teams[i % 2]
        code = f"c{i}{link[:6]}"
        await pg.execute(
            "INSERT INTO links (id, team_id, code, url, destination) VALUES ($1, $2, $3, $4, $4)",
            link,
            team,
            code,
            f"https://example.com/{i}",
        )
        links[link], codes[link] = team, code
    pages = {str(uuid.uuid4()): teams[i % 2] for i in range(2)}
    blocks = {str(uuid.uuid4()): page for page in pages for _ in range(3)}
    return World(teams, links, pages, blocks, codes)


def random_events(world: World, n: int, seed: int = 1, hours: int = 3) -> list[Event]:
    """A deterministic mix of every kind, bots included, over ``hours`` hours."""
    rng = random.Random(seed)
    visitors = [f"{rng.getrandbits(64):016x}" for _ in range(300)]
    links, blocks = list(world.links), list(world.blocks)
    out: list[Event] = []
    for i in range(n):
        ts = BASE_MS + rng.randrange(hours * HOUR_MS)
        roll = rng.random()
        common: dict[str, Any] = {
            "ts_ms": ts,
            "country": rng.choice(["US", "DE", "FR", ""]),
            "device": rng.choice(["mobile", "desktop", "tablet"]),
            "os": rng.choice(["ios", "android", "windows", "macos"]),
            "browser": rng.choice(["chrome", "safari", "firefox"]),
            "referrer": rng.choice(["", "t.co", "news.ycombinator.com"]),
            "visitor": rng.choice(visitors),
            "bot": rng.random() < 0.1,
            # the version 2 columns: mostly empty, as in real traffic (sparse dimensions)
            "region": rng.choice(["", "", "US|California", "DE|Berlin"]),
            "city": rng.choice(["", "", "", "US|California|Mountain View"]),
            "utm_source": rng.choice(["", "", "", "newsletter"]),
            "network": rng.choice(["", "other", "datacenter"]),
        }
        if roll < 0.5:
            link = rng.choice(links)
            routed = rng.random() < 0.3
            out.append(
                Event(
                    kind=CLICK,
                    team_id=world.links[link],
                    link_id=link,
                    source="direct",
                    rule=rng.choice(["0", "none"]) if routed else "",
                    variant=rng.choice(["0.0", "0.1"]) if routed else "",
                    destination=rng.choice(["0123456789ab", "ba9876543210"]),
                    **common,
                )
            )
        elif roll < 0.75:
            page = rng.choice(list(world.pages))
            out.append(Event(kind=VIEW, team_id=world.pages[page], page_id=page, **common))
        elif roll < 0.85:
            block = rng.choice(blocks)
            page = world.blocks[block]
            out.append(Event(kind=BLOCK_CLICK, team_id=world.pages[page], page_id=page, block_id=block, **common))
        elif roll < 0.95:
            block, link = rng.choice(blocks), rng.choice(links)
            page = world.blocks[block]
            out.append(
                Event(
                    CLICK, team_id=world.links[link], link_id=link, page_id=page, block_id=block, source="bio", **common
                )
            )
        else:
            block = rng.choice(blocks)
            page = world.blocks[block]
            data = orjson.dumps({"email": f"user{i}@example.com"}).decode()
            out.append(Event(FORM, team_id=world.pages[page], page_id=page, block_id=block, extra=data, **common))
    return out


async def push(redis: Redis, prefix: str, lines: Iterable[str], shards: int = 8, per_entry: int = 40) -> int:
    """XADD the lines as the edge does: one entry per flush with a unique batch id, shards round robin."""
    chunks: list[list[str]] = [[]]
    for line in lines:
        if len(chunks[-1]) == per_entry:
            chunks.append([])
        chunks[-1].append(line)
    run = uuid.uuid4().hex[:8]
    async with redis.pipeline(transaction=False) as pipe:
        for n, chunk in enumerate(c for c in chunks if c):
            fields = {EVENT_FIELD: encode_batch(chunk), BATCH_ID_FIELD: f"{run}-{n:x}"}
            pipe.xadd(event_stream_key(prefix, n % shards), fields)  # type: ignore[arg-type]
        await pipe.execute()
    return len([c for c in chunks if c])


def lines(events: Iterable[Event]) -> list[str]:
    return [encode_event(e) for e in events]


@dataclass
class Expected:
    """What the tables must hold, computed naively from the events (the rules in workers.aggregate)."""

    hourly: dict[tuple[str, int], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    visitors: dict[tuple[str, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    breakdowns: Counter[tuple[str, int, str, str]] = field(default_factory=Counter)
    totals: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    scans: Counter[str] = field(default_factory=Counter)
    last_scan: dict[str, int] = field(default_factory=dict)
    forms: Counter[str] = field(default_factory=Counter)


def expected(events: Iterable[Event]) -> Expected:
    x = Expected()
    for e in events:
        hour = e.ts_ms // HOUR_MS * HOUR_MS
        if e.kind == FORM:
            x.forms[e.page_id] += 1
            continue
        touched: list[tuple[str, int, bool, bool]] = []  # subject, column, visitors?, breakdowns?
        if e.kind == VIEW:
            touched.append((e.page_id, 1, True, True))
        else:
            if e.link_id:
                touched.append((e.link_id, 0, True, True))
            if e.block_id:
                touched.append((e.block_id, 0, True, False))
            if e.page_id:
                touched.append((e.page_id, 0, False, False))
        if e.link_id and not e.bot:
            x.scans[e.link_id] += 1
            x.last_scan[e.link_id] = max(x.last_scan.get(e.link_id, 0), e.ts_ms)
        for subject, column, visits, breaks in touched:
            col = 2 if e.bot else column
            x.hourly[(subject, hour)][col] += 1
            x.totals[subject][col] += 1
            if e.bot:
                continue
            if visits:
                x.visitors[(subject, hour)].add(e.visitor)
            if breaks:
                for i, dim in enumerate(DIMENSIONS):
                    value = getattr(e, DIMENSION_FIELDS[dim])
                    if i < DENSE or value:  # the sparse dimensions roll up only their values
                        x.breakdowns[(subject, hour, dim, value)] += 1
    return x
