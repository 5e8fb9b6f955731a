"""Analytics retention: an hourly cron deletes hourly and daily roll-ups the team's plan no longer shows.

A row goes when it is older than its team's plan keeps (``api.serving.retention``, the numbers
``api.plans`` is built from), and in any case when it is older than the longest retention of any
plan: rows of a deleted team, or with no team known, go then. The team of a row is its own
``team_id`` (``stats_hourly`` and the team-wide summaries ``stats_daily``, ``stats_team_hourly``,
``stats_team_daily``), its subject's (``stats_totals``, for ``stats_breakdown_hourly``) or its
domain's (``domain_orphan_hourly``). A daily row goes once its whole UTC day is past the bound.
``stats_totals`` (all-time counters) is never pruned.

Deletes run in bounded batches (:data:`BATCH` rows a statement, chosen by ``ctid``), each its own
short transaction on the pool, so the roll-up's upserts never wait behind a long delete. One run
loops until nothing expired is left, and running it again deletes nothing more (idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from api.serving.retention import RETENTION_DAYS

log = logging.getLogger("linkedge.retention")

BATCH = 5_000  # rows per DELETE statement


def _prune(table: str, column: str, team_join: str, *, daily: bool = False) -> str:
    """One batch of ``table``: $1/$2 plans and their days, $3 now, $4/$5 the shortest/longest
    retention, $6 the batch size. The constant bound ($4) lets the BRIN index on ``column`` skip
    the recent pages; the per-row bound is the team's plan, else the longest retention. A ``daily``
    row (a UTC ``date``) goes once its whole day is past the bound."""

    def cut(days: str) -> str:
        moment = f"$3::timestamptz - make_interval(days => {days})"
        return f"(({moment}) AT TIME ZONE 'UTC')::date" if daily else moment

    return f"""
DELETE FROM {table} WHERE ctid = ANY(ARRAY(
    SELECT x.ctid FROM {table} x
    {team_join}
    LEFT JOIN unnest($1::text[], $2::int[]) AS p(plan, days) ON p.plan = t.plan
    WHERE x.{column} < {cut("$4")}
      AND x.{column} < {cut("coalesce(p.days, $5)")}
    LIMIT $6))
"""


_OWN_TEAM = "LEFT JOIN teams t ON t.id = x.team_id"

PRUNES: dict[str, str] = {
    "stats_hourly": _prune("stats_hourly", "bucket", _OWN_TEAM),
    "stats_breakdown_hourly": _prune(
        "stats_breakdown_hourly",
        "bucket",
        "LEFT JOIN stats_totals s ON s.subject_id = x.subject_id LEFT JOIN teams t ON t.id = s.team_id",
    ),
    "domain_orphan_hourly": _prune(
        "domain_orphan_hourly",
        "hour",
        "LEFT JOIN domains d ON d.id = x.domain_id LEFT JOIN teams t ON t.id = d.team_id",
    ),
    # The team-wide summaries (migration 008): each row carries its team.
    "stats_daily": _prune("stats_daily", "day", _OWN_TEAM, daily=True),
    "stats_team_hourly": _prune("stats_team_hourly", "bucket", _OWN_TEAM),
    "stats_team_daily": _prune("stats_team_daily", "day", _OWN_TEAM, daily=True),
}


async def prune_batches(
    pg: asyncpg.Pool,
    *,
    batch: int = BATCH,
    now: datetime | None = None,
    retention: Mapping[str, int] = RETENTION_DAYS,
) -> AsyncIterator[tuple[str, int]]:
    """Delete every expired roll-up row, ``batch`` rows a statement, yielding (table, rows) per statement."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    at = now or datetime.now(UTC)
    plans = sorted(retention)
    days = [retention[p] for p in plans]
    for table, sql in PRUNES.items():
        while True:
            # A pool query outside a transaction block is its own transaction: the rows it deleted
            # are committed (and their locks released) before the next batch starts.
            status = await pg.execute(sql, plans, days, at, min(days), max(days), batch)
            n = int(status.split()[-1])
            yield table, n
            if n < batch:
                break


async def prune_expired(
    pg: asyncpg.Pool,
    *,
    batch: int = BATCH,
    now: datetime | None = None,
    retention: Mapping[str, int] = RETENTION_DAYS,
) -> dict[str, int]:
    """:func:`prune_batches` to the end; returns rows deleted per table."""
    deleted = dict.fromkeys(PRUNES, 0)
    async for table, n in prune_batches(pg, batch=batch, now=now, retention=retention):
        deleted[table] += n
    return deleted


async def prune_expired_stats(ctx: dict[str, Any]) -> dict[str, int]:
    """Job (hourly cron): :func:`prune_expired` on the worker's pool."""
    deleted = await prune_expired(ctx["pg"])
    if any(deleted.values()):
        log.info("retention: deleted %s", ", ".join(f"{n} from {t}" for t, n in deleted.items() if n))
    return deleted
