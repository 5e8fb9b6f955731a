"""The SQL of team-wide analytics: one statement per request, on whichever roll-up can answer it.

Three sources, picked by :func:`api.analytics.service.plan_query`:

- ``team``: ``stats_team_daily`` + ``stats_team_hourly``, a team's clicks per dimension value.
  Answers every dimension without a link filter, and the totals (dimension ``source``, which
  every click has a value of, empty included).
- ``subjects``: ``stats_daily`` + ``stats_hourly``, per link or bio page. Answers ``group_by``
  link, page and none under link filters (``link_id``, ``label``, ``domain``).
- ``breakdowns``: ``stats_breakdown_hourly``, per link, hour and dimension value. Answers a
  dimension under link filters, and links (or the total) under one dimension filter.

Whole UTC days come from the daily tables and the edge hours from the hourly ones
(:func:`api.analytics.window.cover`); ``stats_breakdown_hourly`` is hourly only. Rows are put in
their bucket with ``width_bucket`` over the buckets' UTC starts, summed per key and bucket, and
the top ``limit`` keys by clicks (views for pages) are returned with their buckets, plus the
totals over every key.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeVar

from api.analytics.window import Cover
from kit.postgres import Conn

Source = Literal["team", "subjects", "breakdowns"]
T = TypeVar("T", date, datetime)


@dataclass(frozen=True)
class LinkFilter:
    """Which of the team's links count: all of them when every field is left out."""

    link_id: uuid.UUID | None = None
    labels: tuple[str, ...] = ()
    domain: uuid.UUID | None | Literal[False] = False  # False: any; None: the platform's host

    @property
    def any(self) -> bool:
        return self.link_id is not None or bool(self.labels) or self.domain is not False


@dataclass(frozen=True)
class Query:
    """A resolved request: what to sum, from where, over which buckets."""

    team_id: uuid.UUID
    source: Source
    group: str  # none | link | page | a dimension
    dimension: str | None  # the dimension read from team or breakdowns tables
    value: str | None  # a dimension filter's value (of ``dimension``)
    links: LinkFilter
    starts: Sequence[datetime]  # UTC bucket starts, sorted
    cover: Cover
    window: tuple[datetime, datetime]
    limit: int


@dataclass
class Sums:
    """Clicks (and views, for pages) of the top keys per bucket (index into the starts), and totals."""

    rows: list[tuple[str, int, int, int]] = field(default_factory=list)  # key, bucket, clicks, views
    clicks: int = 0
    views: int = 0
    keys: int = 0  # distinct keys with counts, returned or not


class _Args:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


def _link_conditions(q: Query, a: _Args, alias: str) -> str:
    where = [f"{alias}.team_id = {a(q.team_id, 'uuid')}"]
    if q.links.link_id is not None:
        where.append(f"{alias}.id = {a(q.links.link_id, 'uuid')}")
    if q.links.labels:
        where.append(f"{alias}.labels @> {a(list(q.links.labels), 'text[]')}")
    if q.links.domain is None:
        where.append(f"{alias}.domain_id IS NULL")
    elif q.links.domain is not False:
        where.append(f"{alias}.domain_id = {a(q.links.domain, 'uuid')}")
    return " AND ".join(where)


def _ranges(q: Query, a: _Args) -> tuple[str, str]:
    """Conditions on ``x.day`` and ``x.bucket`` for the cover's days and hours. Each is listed
    (``= ANY``): an index scan for exactly those keys, which ranges joined from ``unnest`` are
    not (the planner cannot see how few rows they match and scans the table)."""
    days = [d for lo, hi in q.cover.days for d in _each(lo, hi, timedelta(days=1))]
    hours = [h for lo, hi in q.cover.hours for h in _each(lo, hi, timedelta(hours=1))]
    return f"x.day = ANY({a(days, 'date[]')})", f"x.bucket = ANY({a(hours, 'timestamptz[]')})"


def _each(lo: T, hi: T, step: timedelta) -> list[T]:
    out: list[T] = []
    while lo < hi:
        out.append(lo)
        lo = lo + step
    return out


def _team_source(q: Query, a: _Args) -> str:
    team, dim = a(q.team_id, "uuid"), a(q.dimension, "text")
    key = "x.value" if q.group == q.dimension else "''"
    only = f" AND x.value = {a(q.value, 'text')}" if q.value is not None else ""
    days, hours = _ranges(q, a)
    return f"""
src AS (
    SELECT {key} AS k, (x.day::timestamp AT TIME ZONE 'UTC') AS t, x.clicks AS c, x.views AS w
    FROM stats_team_daily x WHERE x.team_id = {team} AND x.dimension = {dim} AND {days}{only}
    UNION ALL
    SELECT {key}, x.bucket, x.clicks, x.views
    FROM stats_team_hourly x WHERE x.team_id = {team} AND x.dimension = {dim} AND {hours}{only}
),
f AS (SELECT src.k, src.t, src.c, 0::bigint AS w FROM src)"""


def _subject_source(q: Query, a: _Args, starts: str) -> str:
    team = a(q.team_id, "uuid")
    days, hours = _ranges(q, a)
    if q.group == "page":
        owner = f"JOIN bio_pages p ON p.id = g.s AND p.team_id = {team}"
        key, metric = "g.s::text", "g.c AS c, g.w AS w"
    else:
        owner = f"JOIN links l ON l.id = g.s AND {_link_conditions(q, a, 'l')}"
        key, metric = ("g.s::text" if q.group == "link" else "''"), "g.c AS c, 0::bigint AS w"
    # Summed per subject and bucket before the join: a team's links, not their days, meet the join.
    return f"""
src AS (
    SELECT x.subject_id AS s, (x.day::timestamp AT TIME ZONE 'UTC') AS t, x.clicks AS c, x.views AS w
    FROM stats_daily x WHERE x.team_id = {team} AND {days}
    UNION ALL
    SELECT x.subject_id, x.bucket, x.clicks, x.views
    FROM stats_hourly x WHERE x.team_id = {team} AND {hours}
),
g AS (SELECT s, {_bucket_of("t", q, starts)} AS i, sum(c) AS c, sum(w) AS w FROM src GROUP BY 1, 2),
f AS (SELECT {key} AS k, g.i, {metric} FROM g {owner})"""


def _subject_sums(q: Query) -> str:
    """``b`` for the subjects source: ``g`` is summed per subject already, so per link or page it
    is the answer once joined (no second aggregation over text keys); ``none`` sums it again."""
    if q.group == "none":
        return "b AS (SELECT f.k, f.i, sum(f.c)::bigint AS c, sum(f.w)::bigint AS w FROM f GROUP BY 1, 2)"
    return "b AS (SELECT f.k, f.i, f.c::bigint AS c, f.w::bigint AS w FROM f)"


def _breakdown_source(q: Query, a: _Args) -> str:
    key = {"link": "l.id::text", "none": "''"}.get(q.group, "x.value")
    only = f" AND x.value = {a(q.value, 'text')}" if q.value is not None else ""
    lo, hi = q.window
    return f"""
src AS (
    SELECT {key} AS k, x.bucket AS t, x.clicks AS c
    FROM links l
    JOIN stats_breakdown_hourly x ON x.subject_id = l.id AND x.dimension = {a(q.dimension, "text")}{only}
        AND x.bucket >= {a(lo, "timestamptz")} AND x.bucket < {a(hi, "timestamptz")}
    WHERE {_link_conditions(q, a, "l")}
),
f AS (SELECT src.k, src.t, src.c, 0::bigint AS w FROM src)"""


def _bucket_of(column: str, q: Query, starts: str) -> str:
    """The bucket (from 1) of a row's time: ``width_bucket`` over the starts, or 1 for a single bucket."""
    return "1" if len(q.starts) == 1 else f"width_bucket({column}, {starts})"


async def run(conn: Conn, q: Query) -> Sums:
    """The top ``q.limit`` keys' sums per bucket, and the totals."""
    a = _Args()
    starts = a(list(q.starts), "timestamptz[]") if len(q.starts) > 1 else ""  # unused for one bucket
    if q.source == "team":
        body = _team_source(q, a)
    elif q.source == "subjects":
        body = _subject_source(q, a, starts)
    else:
        body = _breakdown_source(q, a)
    # f holds (k, t, c, w) rows, or already (k, i, c, w) for subjects; b sums them per key and bucket.
    if q.source == "subjects":
        sums = _subject_sums(q)
    else:
        bucket = _bucket_of("f.t", q, starts)
        sums = f"b AS (SELECT f.k, {bucket} AS i, sum(f.c)::bigint AS c, sum(f.w)::bigint AS w FROM f GROUP BY 1, 2)"
    order = "w DESC, c DESC" if q.group == "page" else "c DESC"
    sql = f"""
WITH {body},
{sums},
per_key AS (SELECT k, sum(c)::bigint AS c, sum(w)::bigint AS w FROM b GROUP BY 1 HAVING sum(c) > 0 OR sum(w) > 0),
top AS (SELECT k FROM per_key ORDER BY {order}, k COLLATE "C" LIMIT {a(q.limit, "int")})
SELECT 0 AS part, b.k, b.i, b.c, b.w FROM b JOIN top USING (k) WHERE b.c > 0 OR b.w > 0
UNION ALL
SELECT 1, NULL, count(*), coalesce(sum(c), 0)::bigint, coalesce(sum(w), 0)::bigint FROM per_key
"""
    out = Sums()
    async with conn.transaction():
        # JIT compiling this plan costs more (about 50 ms) than running it: a few hundred thousand rows.
        await conn.execute("SET LOCAL jit = off")
        rows = await conn.fetch(sql, *a.values)
    for r in rows:
        if r["part"] == 0:
            out.rows.append((r["k"], r["i"] - 1, r["c"], r["w"]))
        else:
            out.keys, out.clicks, out.views = r["i"], r["c"], r["w"]
    return out


async def link_labels(conn: Conn, team_id: uuid.UUID, ids: Sequence[str]) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT l.id::text AS id, l.code, l.url, d.hostname FROM links l LEFT JOIN domains d ON d.id = l.domain_id "
        "WHERE l.team_id = $1 AND l.id = ANY($2::uuid[])",
        team_id,
        list(ids),
    )
    return {r["id"]: r for r in rows}


async def page_handles(conn: Conn, team_id: uuid.UUID, ids: Sequence[str]) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT id::text AS id, handle FROM bio_pages WHERE team_id = $1 AND id = ANY($2::uuid[])", team_id, list(ids)
    )
    return {r["id"]: r["handle"] for r in rows}


async def destination_urls(conn: Conn, team_id: uuid.UUID, ids: Sequence[str]) -> dict[str, str]:
    """Destination id -> URL, from any of the team's links that sent visitors there."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (d.destination_id) d.destination_id, d.url FROM link_destinations d "
        "JOIN links l ON l.id = d.link_id WHERE l.team_id = $1 AND d.destination_id = ANY($2::text[]) "
        "ORDER BY d.destination_id, d.first_seen_at",
        team_id,
        list(ids),
    )
    return {r["destination_id"]: r["url"] for r in rows}


async def domain_hostnames(conn: Conn, team_id: uuid.UUID, ids: Sequence[str]) -> dict[str, str]:
    valid = [i for i in ids if _is_uuid(i)]
    rows = await conn.fetch(
        "SELECT id::text AS id, hostname FROM domains WHERE team_id = $1 AND id = ANY($2::uuid[])", team_id, valid
    )
    return {r["id"]: r["hostname"] for r in rows}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
