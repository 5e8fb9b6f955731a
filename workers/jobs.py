"""arq jobs: removing deleted bio pages (enqueued by the API), and the retention prune.

``DELETE /bio-pages/{id}`` marks the page (it stops serving at once) and enqueues
``delete_page``; the rows go here. ``purge_deleted_pages`` catches pages whose job was lost
(Redis down at enqueue time, queue flushed). ``prune_expired_stats`` (:mod:`workers.retention`)
runs hourly as a cron job and can be enqueued by hand.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
from arq.worker import func

from workers.retention import prune_expired_stats

log = logging.getLogger("linkedge.jobs")


async def _delete(conn: Any, page_ids: list[uuid.UUID]) -> int:
    """Delete marked pages, their blocks (cascade), form submissions and analytics rows."""
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT p.id, coalesce(array_agg(b.id) FILTER (WHERE b.id IS NOT NULL), '{}') AS blocks "
            "FROM bio_pages p LEFT JOIN bio_blocks b ON b.page_id = p.id "
            "WHERE p.id = ANY($1::uuid[]) AND p.deleted_at IS NOT NULL GROUP BY p.id",
            page_ids,
        )
        if not rows:
            return 0
        pages = [r["id"] for r in rows]
        subjects = pages + [b for r in rows for b in r["blocks"]]
        await conn.execute("DELETE FROM form_submissions WHERE page_id = ANY($1::uuid[])", pages)
        for table in ("stats_hourly", "stats_breakdown_hourly", "stats_totals"):
            await conn.execute(f"DELETE FROM {table} WHERE subject_id = ANY($1::uuid[])", subjects)
        await conn.execute("DELETE FROM bio_pages WHERE id = ANY($1::uuid[])", pages)
    return len(pages)


async def delete_page(ctx: dict[str, Any], page_id: str) -> bool:
    """Job: delete a bio page marked deleted, with its blocks and data. False when there was none
    (never marked, or already gone): a page that is live again is never touched."""
    pg: asyncpg.Pool = ctx["pg"]
    async with pg.acquire() as conn:
        deleted = await _delete(conn, [uuid.UUID(page_id)])
    log.info("bio page %s %s", page_id, "deleted" if deleted else "was already gone")
    return bool(deleted)


async def purge_deleted_pages(ctx: dict[str, Any], older_than_s: int = 600) -> int:
    """Job: delete every page marked deleted more than ``older_than_s`` seconds ago."""
    pg: asyncpg.Pool = ctx["pg"]
    async with pg.acquire() as conn:
        ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM bio_pages WHERE deleted_at < now() - $1::int * interval '1 second' LIMIT 1000",
                older_than_s,
            )
        ]
        return await _delete(conn, ids) if ids else 0


FUNCTIONS = [
    func(delete_page, name="delete_page"),
    func(purge_deleted_pages, name="purge_deleted_pages"),
    func(prune_expired_stats, name="prune_expired_stats"),
]
