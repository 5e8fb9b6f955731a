"""Bio page use cases shared by both API shapes: transactions, plan limits, handles, write-through.

Every write commits to PostgreSQL, then re-syncs the page's cache record(s) through
:func:`api.serving.sync.sync_page` (old and new handle on a rename), so the edge serves what was
committed. Deleting marks the page at once and leaves the rows to the ``delete_page`` job.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.auth import Principal
from api.bio import queries
from api.bio.blocks import links_as_blocks, parse_uuid, replace_blocks
from api.bio.handles import candidates, handle_problem, slugify
from api.bio.schemas import BlockIn, LinkItemIn
from api.errors import Conflict, NotFound, PaymentRequired, ValidationFailed
from api.serving import sync as cache_sync
from api.serving.queries import blocks_of
from api.settings import Settings
from kit.postgres import Conn, Row
from kit.queue import arq_job_id

log = logging.getLogger("linkedge.bio")
MAX_HANDLE_TRIES = 60


@dataclass(frozen=True)
class Ctx:
    """The app's connections and settings, as a service call needs them."""

    pool: asyncpg.Pool
    redis: Redis
    arq: ArqRedis
    settings: Settings


@dataclass
class Change:
    """A create or update request, in store terms, whichever shape it came from.

    ``profile`` holds page columns to set (``theme``/``seo``/``page_data`` are merged into the
    stored objects); ``blocks`` replaces the block set; ``links`` replaces only the active link
    blocks (page-data shape).
    """

    profile: dict[str, Any] = field(default_factory=dict)
    handle: str | None = None
    handle_field: str = "handle"
    blocks: list[BlockIn] | None = None
    links: list[LinkItemIn] | None = None
    is_published: bool | None = None
    domain: str | None = None  # a hostname to bind the page to, when ``domain_given``
    domain_given: bool = False


@dataclass(frozen=True)
class PageView:
    page: asyncpg.Record
    blocks: list[asyncpg.Record]
    views: int = 0
    clicks: int = 0


def check_plan(principal: Principal) -> None:
    if not principal.plan.bio_pages:
        raise PaymentRequired(f"The {principal.plan.name} plan does not include bio pages; upgrade to use them.")


def page_uuid(value: str) -> uuid.UUID:
    """A page id from the path; anything that is not a UUID cannot be one of ours (404)."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound("No such bio page.")
    return parsed


async def load(conn: Conn, team_id: uuid.UUID, page_id: uuid.UUID) -> PageView:
    page = await queries.get_page(conn, team_id, page_id)
    if page is None:
        raise NotFound("No such bio page.")
    return (await views_of(conn, [page]))[0]


async def views_of(conn: Conn, pages: Sequence[asyncpg.Record], *, with_blocks: bool = True) -> list[PageView]:
    ids = [p["id"] for p in pages]
    blocks = await blocks_of(conn, ids) if with_blocks else {}
    totals = await queries.page_totals(conn, ids)
    return [PageView(p, blocks.get(p["id"], []), *totals.get(p["id"], (0, 0))) for p in pages]


def _merge(stored: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**stored, **given}
    return {k: v for k, v in merged.items() if v is not None}


def _profile_fields(change: Change, stored: Row | None) -> dict[str, Any]:
    fields = dict(change.profile)
    for name in ("theme", "seo", "page_data"):
        if name in fields:
            fields[name] = _merge(stored[name] if stored else {}, fields[name] or {})
    return fields


def _block_items(change: Change, stored_blocks: Sequence[asyncpg.Record]) -> list[tuple[str, BlockIn]] | None:
    if change.blocks is not None:
        return [(f"blocks[{i}]", b) for i, b in enumerate(change.blocks)]
    if change.links is not None:
        return links_as_blocks(stored_blocks, change.links)
    return None


async def _insert_with_handle(
    conn: Conn,
    page_id: uuid.UUID,
    team_id: uuid.UUID,
    wanted: str | None,
    fields: dict[str, Any],
    hostname: str | None = None,
) -> None:
    """Insert the page under ``wanted`` when it is usable and free, else the first free readable handle."""
    if wanted and handle_problem(wanted) is None:
        base = wanted
    else:
        base = slugify(wanted or "") or slugify(fields.get("display_name", "")) or "page"
    taken = await queries.handles_like(conn, base)
    for tries, handle in enumerate(candidates(base)):
        if handle.lower() in taken:
            continue
        try:
            async with conn.transaction():  # a savepoint: a lost race must not abort the whole create
                await queries.insert_page(conn, page_id, team_id, {**fields, "handle": handle})
            return
        except asyncpg.UniqueViolationError as e:
            if e.constraint_name == DOMAIN_KEY:
                raise _domain_taken(hostname) from None
            taken.add(handle.lower())
        if tries > MAX_HANDLE_TRIES:
            break
    raise ValidationFailed.field("handle", "could not find a free handle; choose one")


async def create_page(ctx: Ctx, principal: Principal, change: Change) -> uuid.UUID:
    """Create a draft page (and its blocks) within the plan's page limit; returns its id."""
    check_plan(principal)
    page_id = uuid.uuid4()
    plan = principal.plan
    async with ctx.pool.acquire() as conn, conn.transaction():
        await queries.lock_team_pages(conn, principal.team_id)
        if await queries.count_pages(conn, principal.team_id) >= plan.max_bio_pages:
            raise PaymentRequired(
                f"The {plan.name} plan allows {plan.max_bio_pages} bio page(s); delete one or upgrade to add more."
            )
        fields = _profile_fields(change, None)
        if change.domain_given:
            fields["domain_id"] = await _bio_domain(conn, principal.team_id, change.domain, ctx.settings)
        await _insert_with_handle(conn, page_id, principal.team_id, change.handle, fields, change.domain)
        items = _block_items(change, [])
        if items:
            await replace_blocks(conn, principal.team_id, page_id, items)
    if change.domain:
        await cache_sync.sync_domain(ctx.pool, ctx.redis, ctx.settings.serving, change.domain)
    return page_id


async def update_page(ctx: Ctx, principal: Principal, page_id: uuid.UUID, change: Change) -> None:
    """Apply ``change`` in one transaction, then re-sync the public record(s)."""
    check_plan(principal)
    async with ctx.pool.acquire() as conn, conn.transaction():
        page = await queries.get_page(conn, principal.team_id, page_id, for_update=True)
        if page is None:
            raise NotFound("No such bio page.")
        old_handle = page["handle"]
        fields = _profile_fields(change, page)
        if change.handle is not None and change.handle != old_handle:
            problem = handle_problem(change.handle)
            if problem:
                raise ValidationFailed.field(change.handle_field, problem)
            fields["handle"] = change.handle
        if change.is_published is not None:
            fields["is_published"] = change.is_published
        old_domain = page["domain_hostname"]
        if change.domain_given:
            fields["domain_id"] = await _bio_domain(conn, principal.team_id, change.domain, ctx.settings)
        stored_blocks = (await blocks_of(conn, [page_id]))[page_id]
        items = _block_items(change, stored_blocks)
        if items is not None:
            await replace_blocks(conn, principal.team_id, page_id, items)
        try:
            async with conn.transaction():
                await queries.update_page(conn, page_id, fields)
        except asyncpg.UniqueViolationError as e:
            if e.constraint_name == DOMAIN_KEY:
                raise _domain_taken(change.domain) from None
            raise ValidationFailed.field(change.handle_field, "is already taken") from None
    await _sync(ctx, old_handle, fields.get("handle"))
    if change.domain_given or "handle" in fields or "is_published" in fields:
        # The domain's record names the page shown at its root.
        for hostname in {old_domain, change.domain if change.domain_given else old_domain} - {None}:
            await cache_sync.sync_domain(ctx.pool, ctx.redis, ctx.settings.serving, hostname)


async def set_published(ctx: Ctx, principal: Principal, page_id: uuid.UUID, published: bool) -> None:
    await update_page(ctx, principal, page_id, Change(is_published=published))


async def delete_page(ctx: Ctx, principal: Principal, page_id: uuid.UUID) -> None:
    """Stop serving at once (record deleted, edges told), then queue the rows' deletion."""
    async with ctx.pool.acquire() as conn:
        handle = await queries.mark_deleted(conn, principal.team_id, page_id)
    if handle is None:
        raise NotFound("No such bio page.")
    await _sync(ctx, handle, None)
    try:
        await ctx.arq.enqueue_job(
            "delete_page", str(page_id), _job_id=arq_job_id(f"delete_page:{page_id}", ctx.settings.key_prefix)
        )
    except RedisError as e:
        # The page is already invisible; its rows wait for the worker's sweep of deleted pages.
        log.warning("could not queue deletion of bio page %s: %s", page_id, e)


DOMAIN_KEY = "bio_pages_domain_key"  # one live page per domain (migration 004)


def _domain_taken(hostname: str | None) -> Conflict:
    return Conflict(f"Another page of this team is already shown at {hostname}; unbind it first.")


async def _bio_domain(conn: Conn, team_id: uuid.UUID, hostname: str | None, settings: Settings) -> uuid.UUID | None:
    """The id of the team's bio domain ``hostname`` (None unbinds), or a 422 naming ``domain``."""
    if hostname is None:
        return None
    row = await queries.bio_domain(conn, team_id, hostname)
    if row is None:
        raise ValidationFailed.field(
            "domain",
            f"must be one of this team's domains ('{hostname[:100]}' is not); add it with POST /api/v1/domains",
        )
    if row["kind"] == "links":
        raise ValidationFailed.field(
            "domain", f"must be a bio domain ('{hostname}' serves short links only); set its kind to bio or both"
        )
    domain_id: uuid.UUID = row["id"]
    return domain_id


async def _sync(ctx: Ctx, old_handle: str, new_handle: str | None) -> None:
    await cache_sync.sync_page(ctx.pool, ctx.redis, ctx.settings.serving, old_handle)
    if new_handle is not None and new_handle.lower() != old_handle.lower():
        await cache_sync.sync_page(ctx.pool, ctx.redis, ctx.settings.serving, new_handle)


async def resync_pages(pool: asyncpg.Pool, redis: Redis, settings: Settings, handles: Sequence[str]) -> None:
    """Re-render pages after a short link behind their blocks changed or went away.

    Collect ``handles`` with :func:`api.links.queries.page_handles_using` *before* the link's write
    (deleting a link nulls ``bio_blocks.link_id``), call this after the commit.
    """
    for handle in dict.fromkeys(h.lower() for h in handles):
        await cache_sync.sync_page(pool, redis, settings.serving, handle)
