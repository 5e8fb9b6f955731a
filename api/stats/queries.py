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
    starts = bucket_starts(window)
    buckets = [Counts() for _ in starts]
    for r in await _hours(conn, [subject_id], window.start, window.end):
        i = bisect_right(starts, r["bucket"]) - 1
        if i >= 0:
            buckets[i].add(r)
    return list(zip(starts, buckets, strict=True))


async def breakdowns(
    conn: Conn, subject_id: Subject, start: datetime, end: datetime, limit: int = 10
) -> dict[str, list[dict[str, Any]]]:
    """Top ``limit`` values per dimension (country, device, os, browser, referrer) by human clicks
    (links) or views (pages). An empty value is shown as ``(direct)`` for referrers, else ``(unknown)``."""
    rows = await conn.fetch(
        "SELECT dimension, value, sum(clicks)::bigint AS n FROM stats_breakdown_hourly "
        "WHERE subject_id = $1 AND bucket >= $2 AND bucket < $3 GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2",
        str(subject_id),
        start,
        end,
    )
    out: dict[str, list[dict[str, Any]]] = {d: [] for d in DIMENSIONS}
    for r in rows:
        top = out.setdefault(r["dimension"], [])
        if len(top) < limit:
            value = r["value"] or _UNKNOWN.get(r["dimension"], "(unknown)")
            top.append({"value": value, "clicks": r["n"]})
    return out
