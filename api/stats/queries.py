"""Reading the roll-up's counters (links, bio pages and blocks alike: a subject is any of them).

Visitors are merged from the hourly sketches (:func:`kit.sketch.merge_count`): exact up to 512
per hour, else a HyperLogLog with a standard error of 1.6 %. Visitor ids are a hash salted per UTC
day, so over a range longer than a day a returning visitor counts once per day they came.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from api.stats.window import Window, bucket_starts
from kit.postgres import Conn
from kit.sketch import merge_count
from redirector.events import DIMENSIONS

_UNKNOWN = {"referrer": "(direct)"}  # label of the empty value; "(unknown)" for the others

Subject = UUID | str


@dataclass
class Counts:
    """Human clicks and views, bots, and the visitor sketches of some hours (merged on demand)."""

    clicks: int = 0
    views: int = 0
    bots: int = 0
    sketches: list[bytes] = field(default_factory=list)

    def add(self, row: Any) -> None:
        self.clicks += row["clicks"]
        self.views += row["views"]
        self.bots += row["bots"]
        if row["visitors"]:
            self.sketches.append(row["visitors"])

    @property
    def visitors(self) -> int:
        """Distinct visitors (once per day, see above)."""
        return merge_count(self.sketches)


def combine(parts: Iterable[Counts]) -> Counts:
    total = Counts()
    for part in parts:
        total.clicks += part.clicks
        total.views += part.views
        total.bots += part.bots
        total.sketches += part.sketches
    return total


async def _hours(conn: Conn, subject_ids: Sequence[Subject], start: datetime, end: datetime) -> list[Any]:
    return list(
        await conn.fetch(
            "SELECT subject_id, bucket, clicks, views, bots, visitors FROM stats_hourly "
            "WHERE subject_id = ANY($1::uuid[]) AND bucket >= $2 AND bucket < $3 ORDER BY bucket",
            [str(s) for s in subject_ids],
            start,
            end,
        )
    )


async def totals(conn: Conn, subject_ids: Sequence[Subject], start: datetime, end: datetime) -> dict[UUID, Counts]:
    """Counts per subject over ``[start, end)``; a subject without any is there with zeros."""
    out = {UUID(str(s)): Counts() for s in subject_ids}
    for r in await _hours(conn, subject_ids, start, end):
        out[r["subject_id"]].add(r)
    return out


async def series(conn: Conn, subject_id: Subject, window: Window) -> list[tuple[datetime, Counts]]:
    """``(UTC start, counts)`` of each ``window.interval`` bucket in ``window.tz`` (see
    :func:`api.stats.window.bucket_starts`); the first and last can be partial."""
    return (await series_of(conn, [subject_id], window))[UUID(str(subject_id))]


async def series_of(
    conn: Conn, subject_ids: Sequence[Subject], window: Window
) -> dict[UUID, list[tuple[datetime, Counts]]]:
    """:func:`series` of several subjects, in one query."""
    starts = bucket_starts(window)
    out = {UUID(str(s)): [Counts() for _ in starts] for s in subject_ids}
    for r in await _hours(conn, subject_ids, window.start, window.end):
        i = bisect_right(starts, r["bucket"]) - 1
        if i >= 0:
            out[r["subject_id"]][i].add(r)
    return {s: list(zip(starts, buckets, strict=True)) for s, buckets in out.items()}


async def breakdowns(
    conn: Conn,
    subject_id: Subject,
    start: datetime,
    end: datetime,
    limit: int = 10,
    *,
    dimensions: Sequence[str] = DIMENSIONS,
    count: str = "clicks",
) -> dict[str, list[dict[str, Any]]]:
    """Top ``limit`` values per dimension (of :data:`redirector.events.DIMENSIONS`) by human clicks
    (links) or views (pages), each ``{"value": ..., count: n}``. An empty value (only the dense
    dimensions roll it up) is shown as ``(direct)`` for referrers, else ``(unknown)``."""
    rows = await conn.fetch(
        "SELECT dimension, value, sum(clicks)::bigint AS n FROM stats_breakdown_hourly "
        "WHERE subject_id = $1 AND bucket >= $2 AND bucket < $3 AND dimension = ANY($4::text[]) "
        "GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2",
        str(subject_id),
        start,
        end,
        list(dimensions),
    )
    out: dict[str, list[dict[str, Any]]] = {d: [] for d in dimensions}
    for r in rows:
        top = out.setdefault(r["dimension"], [])
        if len(top) < limit:
            value = r["value"] or _UNKNOWN.get(r["dimension"], "(unknown)")
            top.append({"value": value, count: r["n"]})
    return out


async def dimension_counts(
    conn: Conn, subject_id: Subject, dimension: str, start: datetime, end: datetime
) -> dict[str, int]:
    """Every value of one dimension over ``[start, end)`` and its count (no top-N cut)."""
    rows = await conn.fetch(
        "SELECT value, sum(clicks)::bigint AS n FROM stats_breakdown_hourly "
        "WHERE subject_id = $1 AND dimension = $2 AND bucket >= $3 AND bucket < $4 GROUP BY 1",
        str(subject_id),
        dimension,
        start,
        end,
    )
    return {r["value"]: r["n"] for r in rows}


async def destination_urls(conn: Conn, link_id: Subject, ids: Iterable[str]) -> dict[str, str]:
    """Destination id -> URL, of the ids that ``link_destinations`` knows for the link."""
    rows = await conn.fetch(
        "SELECT destination_id, url FROM link_destinations WHERE link_id = $1 AND destination_id = ANY($2::text[])",
        str(link_id),
        list(ids),
    )
    return {r["destination_id"]: r["url"] for r in rows}


async def domain_hostnames(conn: Conn, team_id: Subject, ids: Iterable[str]) -> dict[str, str]:
    """Domain id -> hostname, of the ids that name a domain of the team (deleted ones too)."""
    uuids = []
    for i in ids:
        try:
            uuids.append(str(UUID(i)))
        except ValueError:
            continue  # not a domain id: no name
    if not uuids:
        return {}
    rows = await conn.fetch(
        "SELECT id, hostname FROM domains WHERE team_id = $1 AND id = ANY($2::uuid[])", str(team_id), uuids
    )
    return {str(r["id"]): r["hostname"] for r in rows}
