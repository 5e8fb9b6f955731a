"""SQL for links. Every function takes a connection first; all reads are scoped to a team."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg

from kit.postgres import Conn
from redirector.events import destination_id

Executor = Conn | asyncpg.Pool  # single-statement reads may go straight to the pool

# Columns a write may set; PATCH builds its SET list from these names only.
WRITABLE = (
    "code",
    "url",
    "destination",
    "enabled",
    "labels",
    "routing_rules",
    "redirect_type",
    "forward_query",
    "max_clicks",
    "password_hash",
    "title",
    "notes",
    "utm",
    "expires_at",
    "domain_id",
    "expired_url",
    "crawlable",
)
# Rows the API returns carry their domain's hostname (NULL: the platform's domain).
WITH_HOST = "SELECT l.*, d.hostname AS domain_hostname FROM {source} l LEFT JOIN domains d ON d.id = l.domain_id"
LINKS = WITH_HOST.format(source="links")

# Codes are unique per domain (two partial unique indexes), so a taken code is any conflict.
_INSERT = f"""
WITH ins AS (
    INSERT INTO links (id, team_id, {", ".join(WRITABLE)}, created_at, updated_at)
    SELECT $1, $2, {", ".join(f"${i}" for i in range(3, 3 + len(WRITABLE)))}, t.now, t.now
    FROM (SELECT clock_timestamp() AS now) t
    ON CONFLICT DO NOTHING
    RETURNING *
)
{WITH_HOST.format(source="ins")}
"""


async def lock_team_links(conn: Conn, team_id: uuid.UUID) -> None:
    """Serialise link creation per team until the transaction ends, so plan limits can't be overshot."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"links:count:{team_id}")


async def count_links(conn: Conn, team_id: uuid.UUID) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM links WHERE team_id = $1", team_id)
    return count


async def insert_link(conn: Conn, link_id: uuid.UUID, team_id: uuid.UUID, values: Mapping[str, Any]) -> Any:
    """Insert a link; None when its code is taken on its domain."""
    return await conn.fetchrow(_INSERT, link_id, team_id, *(values[c] for c in WRITABLE))


async def record_destinations(conn: Conn, link_id: uuid.UUID, urls: Iterable[str]) -> None:
    """Remember each of ``urls`` under its destination id, so that a breakdown by destination can
    name URLs the link no longer has; a URL already known keeps its ``first_seen_at``."""
    unique = list(dict.fromkeys(urls))
    await conn.execute(
        "INSERT INTO link_destinations (link_id, destination_id, url) "
        "SELECT $1, d, u FROM unnest($2::text[], $3::text[]) AS t(d, u) ON CONFLICT DO NOTHING",
        link_id,
        [destination_id(u) for u in unique],
        unique,
    )


async def get_link(conn: Executor, team_id: uuid.UUID, link_id: uuid.UUID, *, for_update: bool = False) -> Any:
    sql = f"{LINKS} WHERE l.id = $1 AND l.team_id = $2"
    return await conn.fetchrow(sql + (" FOR UPDATE OF l" if for_update else ""), link_id, team_id)


async def team_domain(conn: Executor, team_id: uuid.UUID, hostname: str) -> Any:
    """The team's live domain ``hostname`` (``id``, ``kind``), else None."""
    return await conn.fetchrow(
        "SELECT id, kind FROM domains WHERE team_id = $1 AND hostname = $2 AND deleted_at IS NULL", team_id, hostname
    )


async def update_link(conn: Conn, link_id: uuid.UUID, changes: Mapping[str, Any]) -> Any:
    """Apply ``changes`` (column -> value, columns from :data:`WRITABLE`) and stamp ``updated_at``."""
    columns = [c for c in changes if c in WRITABLE]
    if len(columns) != len(changes):
        raise ValueError(f"not writable: {sorted(set(changes) - set(WRITABLE))}")
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    sql = (
        f"WITH upd AS (UPDATE links SET {sets}, updated_at = clock_timestamp() WHERE id = $1 RETURNING *) "
        + WITH_HOST.format(source="upd")
    )
    return await conn.fetchrow(sql, link_id, *(changes[c] for c in columns))


async def delete_link(conn: Conn, team_id: uuid.UUID, link_id: uuid.UUID) -> Any:
    sql = "DELETE FROM links WHERE id = $1 AND team_id = $2 RETURNING id, code, domain_id"
    return await conn.fetchrow(sql, link_id, team_id)


async def page_handles_using(conn: Conn, link_id: uuid.UUID) -> list[str]:
    """Handles of live bio pages with a block routed through this link (their records embed its code)."""
    rows = await conn.fetch(
        "SELECT DISTINCT p.handle FROM bio_blocks b JOIN bio_pages p ON p.id = b.page_id "
        "WHERE b.link_id = $1 AND p.deleted_at IS NULL",
        link_id,
    )
    return [r["handle"] for r in rows]


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_links(
    conn: Executor,
    team_id: uuid.UUID,
    *,
    labels: Sequence[str] = (),
    search: str | None = None,
    domain: uuid.UUID | None | Literal[False] = False,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 26,
) -> list[asyncpg.Record]:
    """Newest first, keyset-paginated on ``(created_at, id)``; ``labels`` must all be present.

    ``domain``: False for every domain, None for the platform's only, else that domain's id.
    """
    where = ["l.team_id = $1"]
    args: list[Any] = [team_id]
    if labels:
        args.append(list(labels))
        where.append(f"l.labels @> ${len(args)}::text[]")
    if search:
        args.append(_like(search))
        n = len(args)
        where.append(f"(l.code ILIKE ${n} OR l.url ILIKE ${n} OR l.destination ILIKE ${n} OR l.title ILIKE ${n})")
    if domain is None:
        where.append("l.domain_id IS NULL")
    elif domain is not False:
        args.append(domain)
        where.append(f"l.domain_id = ${len(args)}")
    if after is not None:
        args.extend(after)
        where.append(f"(l.created_at, l.id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    sql = f"{LINKS} WHERE {' AND '.join(where)} ORDER BY l.created_at DESC, l.id DESC LIMIT ${len(args)}"
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


async def export_batch(
    conn: Conn, team_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """Oldest first (so an export re-imports in its original order), keyset-paginated."""
    if after is None:
        sql = f"{LINKS} WHERE l.team_id = $1 ORDER BY l.created_at, l.id LIMIT $2"
        rows: list[asyncpg.Record] = await conn.fetch(sql, team_id, limit)
    else:
        sql = f"{LINKS} WHERE l.team_id = $1 AND (l.created_at, l.id) > ($2, $3) ORDER BY l.created_at, l.id LIMIT $4"
        rows = await conn.fetch(sql, team_id, after[0], after[1], limit)
    return rows
