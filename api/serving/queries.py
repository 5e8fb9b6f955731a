"""The SQL the read model runs: the rows that become edge records.

Deleted pages (``deleted_at`` set, waiting for the delete job) and unpublished ones have no record.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from kit.postgres import Conn

PAGE_COLUMNS = (
    "p.id, p.team_id, p.handle, p.display_name, p.headline, p.bio, p.avatar_url, p.theme, p.seo, p.page_data, "
    "p.is_published, p.published_at, p.created_at, p.updated_at, "
    # The team domain the page is bound to (its root shows the page), and whether that serves yet.
    "pd.hostname AS domain_hostname, (pd.verified_at IS NOT NULL) AS domain_verified"
)
# The join PAGE_COLUMNS needs after ``FROM bio_pages p``.
PAGE_DOMAIN = " LEFT JOIN domains pd ON pd.id = p.domain_id AND pd.deleted_at IS NULL"
BLOCK_COLUMNS = (
    "b.id, b.page_id, b.type, b.label, b.url, b.link_id, b.icon, b.sort_order, b.is_active, b.config, "
    "b.created_at, b.updated_at, l.code AS link_code, l.title AS link_title, l.destination AS link_destination, "
    # link_ref: what the edge's link key is built from (redirector.keys.link_key); link_hostname: its
    # domain (NULL: the platform's)
    "CASE WHEN l.domain_id IS NULL THEN l.code ELSE l.domain_id::text || '/' || l.code END AS link_ref, "
    "ld.hostname AS link_hostname"
)


async def published_page(conn: Conn, handle: str) -> asyncpg.Record | None:
    """The live, published page answering to ``handle`` (case-insensitively)."""
    return await conn.fetchrow(
        f"SELECT {PAGE_COLUMNS} FROM bio_pages p{PAGE_DOMAIN} "
        "WHERE lower(p.handle) = lower($1) AND p.deleted_at IS NULL AND p.is_published",
        handle,
    )


async def published_pages_after(conn: Conn, after: uuid.UUID | None, limit: int) -> list[asyncpg.Record]:
    """A keyset batch of every published page, ordered by id."""
    return await conn.fetch(
        f"SELECT {PAGE_COLUMNS} FROM bio_pages p{PAGE_DOMAIN} WHERE p.deleted_at IS NULL AND p.is_published "
        "AND ($1::uuid IS NULL OR p.id > $1) ORDER BY p.id LIMIT $2",
        after,
        limit,
    )


async def blocks_of(conn: Conn, page_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[asyncpg.Record]]:
    """Blocks of each page by ``sort_order`` (ties in creation order), with their short link's code."""
    out: dict[uuid.UUID, list[asyncpg.Record]] = {pid: [] for pid in page_ids}
    if not page_ids:
        return out
    rows = await conn.fetch(
        f"SELECT {BLOCK_COLUMNS} FROM bio_blocks b LEFT JOIN links l ON l.id = b.link_id "
        "LEFT JOIN domains ld ON ld.id = l.domain_id "
        "WHERE b.page_id = ANY($1::uuid[]) ORDER BY b.page_id, b.sort_order, b.created_at, b.id",
        list(page_ids),
    )
    for row in rows:
        out[row["page_id"]].append(row)
    return out
