"""SQL of bio pages and blocks. Functions take a connection first; services own the transactions.

Deleted pages (``deleted_at`` set, waiting for the delete job) are invisible to every query here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from api.serving.queries import PAGE_COLUMNS, PAGE_DOMAIN
from kit.postgres import Conn

PAGE_FIELDS = (
    "handle",
    "display_name",
    "headline",
    "bio",
    "avatar_url",
    "theme",
    "seo",
    "page_data",
    "domain_id",
)
BLOCK_FIELDS = ("type", "label", "url", "link_id", "icon", "sort_order", "is_active", "config")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def lock_team_pages(conn: Conn, team_id: uuid.UUID) -> None:
    """Serialise page creation per team, so two concurrent creates cannot both pass the plan limit."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('bio-pages:' || $1::uuid::text))", team_id)


async def count_pages(conn: Conn, team_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM bio_pages WHERE team_id = $1 AND deleted_at IS NULL", team_id
    )
    return count


async def get_page(
    conn: Conn, team_id: uuid.UUID, page_id: uuid.UUID, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE OF p" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {PAGE_COLUMNS} FROM bio_pages p{PAGE_DOMAIN} "
        f"WHERE p.id = $1 AND p.team_id = $2 AND p.deleted_at IS NULL{lock}",
        page_id,
        team_id,
    )


async def list_pages(
    conn: Conn,
    team_id: uuid.UUID,
    *,
    search: str | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[asyncpg.Record]:
    """Newest first, with ``blocks_count``; ``search`` matches handle, display name or headline."""
    args: list[Any] = [team_id, limit]
    where = "p.team_id = $1 AND p.deleted_at IS NULL"
    if search:
        args.append(_like(search))
        n = len(args)
        where += f" AND (p.handle ILIKE ${n} OR p.display_name ILIKE ${n} OR p.headline ILIKE ${n})"
    if after is not None:
        args.extend(after)
        where += f" AND (p.created_at, p.id) < (${len(args) - 1}, ${len(args)})"
    return await conn.fetch(
        f"SELECT {PAGE_COLUMNS}, (SELECT count(*) FROM bio_blocks b WHERE b.page_id = p.id) AS blocks_count "
        f"FROM bio_pages p{PAGE_DOMAIN} WHERE {where} ORDER BY p.created_at DESC, p.id DESC LIMIT $2",
        *args,
    )


async def bio_domain(conn: Conn, team_id: uuid.UUID, hostname: str) -> asyncpg.Record | None:
    """The team's live domain ``hostname`` (``id``, ``kind``), else None."""
    return await conn.fetchrow(
        "SELECT id, kind FROM domains WHERE team_id = $1 AND hostname = $2 AND deleted_at IS NULL", team_id, hostname
    )


async def search_pages(conn: Conn, team_id: uuid.UUID, q: str, limit: int = 50) -> list[asyncpg.Record]:
    """Lightweight matches: exact handle first, then handle prefixes, then newest."""
    return await conn.fetch(
        "SELECT id, handle, display_name, headline FROM bio_pages "
        "WHERE team_id = $1 AND deleted_at IS NULL "
        "AND ($2 = '' OR handle ILIKE $3 OR display_name ILIKE $3 OR headline ILIKE $3) "
        "ORDER BY lower(handle) = lower($2) DESC, handle ILIKE ($4 || '%') DESC, created_at DESC, id DESC LIMIT $5",
        team_id,
        q,
        _like(q),
        q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"),
        limit,
    )


async def handles_like(conn: Conn, base: str) -> set[str]:
    """Lower-cased live handles equal to ``base`` or of the form ``base-…``: what generation must skip."""
    rows = await conn.fetch(
        "SELECT lower(handle) AS h FROM bio_pages WHERE deleted_at IS NULL "
        "AND (lower(handle) = lower($1) OR lower(handle) LIKE lower($2) || '-%')",
        base,
        base.replace("_", "\\_"),
    )
    return {r["h"] for r in rows}


async def insert_page(conn: Conn, page_id: uuid.UUID, team_id: uuid.UUID, fields: Mapping[str, Any]) -> None:
    await _insert(conn, "bio_pages", ("id", "team_id"), (page_id, team_id), PAGE_FIELDS, fields)


async def update_page(conn: Conn, page_id: uuid.UUID, fields: Mapping[str, Any]) -> None:
    """Set ``fields`` (page columns, plus ``is_published``) and bump ``updated_at``.

    Publishing stamps ``published_at`` the first time only.
    """
    sets = ["updated_at = now()"]
    args: list[Any] = [page_id]
    for name in (*PAGE_FIELDS, "is_published"):
        if name in fields:
            args.append(fields[name])
            sets.append(f"{name} = ${len(args)}")
    if fields.get("is_published"):
        sets.append("published_at = coalesce(published_at, now())")
    await conn.execute(f"UPDATE bio_pages SET {', '.join(sets)} WHERE id = $1", *args)


async def mark_deleted(conn: Conn, team_id: uuid.UUID, page_id: uuid.UUID) -> str | None:
    """Take a page out of service at once; returns its handle (None when there is no such live page)."""
    handle: str | None = await conn.fetchval(
        "UPDATE bio_pages SET deleted_at = now(), updated_at = now() "
        "WHERE id = $1 AND team_id = $2 AND deleted_at IS NULL RETURNING handle",
        page_id,
        team_id,
    )
    return handle


async def team_links(conn: Conn, team_id: uuid.UUID, link_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``link_ids`` are short links of ``team_id``."""
    ids = list(set(link_ids))
    if not ids:
        return set()
    rows = await conn.fetch("SELECT id FROM links WHERE team_id = $1 AND id = ANY($2::uuid[])", team_id, ids)
    return {r["id"] for r in rows}


async def insert_block(conn: Conn, block_id: uuid.UUID, page_id: uuid.UUID, block: Mapping[str, Any]) -> None:
    await _insert(conn, "bio_blocks", ("id", "page_id"), (block_id, page_id), BLOCK_FIELDS, block)


async def _insert(
    conn: Conn,
    table: str,
    keys: tuple[str, str],
    key_values: tuple[uuid.UUID, uuid.UUID],
    allowed: Iterable[str],
    fields: Mapping[str, Any],
) -> None:
    """INSERT the key columns plus those of ``allowed`` (a fixed list, never user input) in ``fields``."""
    cols = [*keys, *(f for f in allowed if f in fields)]
    placeholders = ", ".join(f"${i + 1}" for i in range(len(cols)))
    values = [*key_values, *(fields[c] for c in cols[len(keys) :])]
    await conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({placeholders})", *values)


async def update_block(conn: Conn, block_id: uuid.UUID, block: Mapping[str, Any]) -> None:
    cols = [f for f in BLOCK_FIELDS if f in block]
    sets = ", ".join([*(f"{c} = ${i + 2}" for i, c in enumerate(cols)), "updated_at = now()"])
    await conn.execute(f"UPDATE bio_blocks SET {sets} WHERE id = $1", block_id, *(block[c] for c in cols))


async def delete_blocks_except(conn: Conn, page_id: uuid.UUID, keep: Iterable[uuid.UUID]) -> None:
    await conn.execute("DELETE FROM bio_blocks WHERE page_id = $1 AND NOT (id = ANY($2::uuid[]))", page_id, list(keep))


async def page_totals(conn: Conn, page_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int]]:
    """All-time (views, clicks) of each page from the analytics roll-up; a page's clicks are its blocks'."""
    if not page_ids:
        return {}
    rows = await conn.fetch(
        "SELECT subject_id, views, clicks FROM stats_totals WHERE subject_id = ANY($1::uuid[])", list(page_ids)
    )
    return {r["subject_id"]: (int(r["views"]), int(r["clicks"])) for r in rows}
