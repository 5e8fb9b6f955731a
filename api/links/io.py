"""Import and export of links for the CLI (``linkedge links import|export``).

Import goes through the same service as ``POST /links/bulk`` (same validation, plan limit, cache
write-through), 100 rows per transaction. Rows may be create bodies or exported link objects:
``short_code`` stands in for ``custom_slug`` and ``destination`` for ``url``, and read-only fields
(``id``, ``scan_count``, ...) are ignored, so an export imports again.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from redis.asyncio import Redis

from api.links import queries, service
from api.links.objects import link_object
from api.plans import get_plan
from api.settings import Settings
from kit.postgres import Conn

CHUNK = 100
EXPORT_BATCH = 500
READ_ONLY = frozenset(
    {"id", "short_url", "scan_count", "last_scan_at", "created_at", "updated_at", "password_protected"}
)


@dataclass
class ImportReport:
    created: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (row number from 1, message)


def import_body(row: Mapping[str, Any]) -> dict[str, Any]:
    """A create body from an import row (a create body, or a link object as exported)."""
    body = {k: v for k, v in row.items() if k not in READ_ONLY}
    code = body.pop("short_code", None)
    if code is not None and "custom_slug" not in body:
        body["custom_slug"] = code
    destination = body.pop("destination", None)
    if destination is not None and "url" not in body:
        body["url"] = destination
    return body


async def import_links(
    pool: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    team_id: uuid.UUID,
    rows: list[dict[str, Any]],
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Create links from ``rows``; every failed row is reported with its number and one sentence.

    Typed values are expected as JSON gives them, but CSV text works too: ``"true"``, ``"302"``
    and the like are converted here, although the API's JSON bodies take only real booleans and
    numbers.
    """
    plan_name = await pool.fetchval("SELECT plan FROM teams WHERE id = $1", team_id)
    if plan_name is None:
        raise ValueError(f"no team with id {team_id}")
    plan = get_plan(plan_name)
    report = ImportReport()
    total = len(rows)
    if progress:
        progress(0, total)
    for start in range(0, total, CHUNK):
        chunk = [import_body(r) if isinstance(r, Mapping) else r for r in rows[start : start + CHUNK]]
        result = await service.create_many(pool, redis, settings, team_id, plan, chunk)
        report.created += len(result.created)
        report.errors.extend((start + e.index + 1, e.message) for e in result.errors)
        if progress:
            progress(min(start + CHUNK, total), total)
    return report


async def export_links(
    conn: Conn, team_id: uuid.UUID, settings: Settings | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Every link of the team, oldest first, as link objects plus ``url`` (as given, before UTM).

    ``short_url`` needs the public base URL: pass ``settings`` (without it, the defaults' is used).
    """
    settings = settings or Settings()
    after = None
    while True:
        rows = await queries.export_batch(conn, team_id, after, EXPORT_BATCH)
        for row in rows:
            yield {"url": row["url"], **link_object(row, settings)}
        if len(rows) < EXPORT_BATCH:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])
