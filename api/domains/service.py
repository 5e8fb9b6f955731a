"""Domain use cases: claims, DNS proof, settings, deletion, and the cache write-through.

A team adds a hostname and gets a TXT challenge; the domain serves nothing until ``verify`` finds the
token at ``_linkedge-challenge.<hostname>`` (or the operator adds it verified from the CLI). Many
teams may claim one hostname, but only one can prove it: a partial unique index in PostgreSQL
holds that, and the claim and proof of a hostname run under its advisory lock. Every write commits
first and then rewrites the domain's cache record (:func:`api.serving.sync.sync_domain`), which
exists only while the domain is verified and live.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import dns.asyncresolver
from redis.asyncio import Redis

from api.domains import queries
from api.domains.dns import DnsUnavailable, challenge_name, txt_values
from api.domains.schemas import DomainCreate, DomainUpdate
from api.errors import Conflict, NotFound, PaymentRequired, ServiceUnavailable, ValidationFailed
from api.pagination import PageParams, paginate
from api.plans import Plan
from api.serving import sync as cache_sync
from api.settings import Settings
from redirector.events import ORPHAN_KINDS

Row = Any  # an asyncpg.Record of the domains table, with links_count


@dataclass(frozen=True)
class Ctx:
    pool: asyncpg.Pool
    redis: Redis
    settings: Settings


def parse_id(domain_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(domain_id)
    except ValueError:
        raise not_found(domain_id) from None


def not_found(domain_id: object) -> NotFound:
    return NotFound(f"No domain with id '{str(domain_id)[:64]}' exists in this team.")


def new_token() -> str:
    return "linkedge-verify-" + secrets.token_hex(16)


def taken(hostname: str) -> Conflict:
    return Conflict(f"The domain {hostname} is already verified by another team.")


async def _synced(ctx: Ctx, hostname: str, domain_id: uuid.UUID) -> None:
    """Rewrite the domain's record, and the record of a page bound to it (its canonical URL moves)."""
    await cache_sync.sync_domain(ctx.pool, ctx.redis, ctx.settings.serving, hostname)
    handles = await ctx.pool.fetch(
        "SELECT handle FROM bio_pages WHERE domain_id = $1 AND deleted_at IS NULL", domain_id
    )
    for row in handles:
        await cache_sync.sync_page(ctx.pool, ctx.redis, ctx.settings.serving, row["handle"])


def _settings(body: DomainCreate | DomainUpdate) -> dict[str, Any]:
    return {name: getattr(body, name) for name in queries.WRITABLE if name in body.model_fields_set}


async def create_domain(
    ctx: Ctx, team_id: uuid.UUID, plan: Plan, body: DomainCreate, *, verified: bool = False, operator: bool = False
) -> Row:
    """Add a domain (402 past the plan, 409 when the team has it or another team proved it).

    ``operator`` (the CLI) may add the platform's own hostnames and skip the plan's limit.
    """
    hostname = body.hostname
    if not operator and hostname in ctx.settings.platform_hosts:
        raise ValidationFailed.field("hostname", "is this service's own hostname; add a domain you control")
    values = _settings(body)
    values.setdefault("kind", body.kind)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await queries.lock_team_domains(conn, team_id)
        await queries.lock_hostname(conn, hostname)
        owner = await queries.owner_of(conn, hostname)
        if owner is not None and owner != team_id:
            raise taken(hostname)
        if not operator and await queries.count_domains(conn, team_id) >= plan.max_domains:
            raise PaymentRequired(
                f"The {plan.name} plan allows {plan.max_domains} custom domain"
                f"{'s' if plan.max_domains != 1 else ''}; delete one or upgrade to add more."
            )
        row = await queries.insert_domain(conn, team_id, hostname, new_token(), values, verified)
        if row is None:
            raise Conflict(f"This team already has the domain {hostname}.")
    await cache_sync.sync_domain(ctx.pool, ctx.redis, ctx.settings.serving, hostname)
    return row


async def get_domain(pool: asyncpg.Pool, team_id: uuid.UUID, domain_id: str) -> Row:
    row = await queries.get_domain(pool, team_id, parse_id(domain_id))
    if row is None:
        raise not_found(domain_id)
    return row


async def list_domains(pool: asyncpg.Pool, team_id: uuid.UUID, page: PageParams) -> tuple[list[Row], str | None]:
    rows: list[Any] = await queries.list_domains(pool, team_id, after=page.after, limit=page.per_page + 1)
    return paginate(rows, page.per_page)


async def update_domain(ctx: Ctx, team_id: uuid.UUID, domain_id: str, body: DomainUpdate) -> Row:
    did = parse_id(domain_id)
    changes = _settings(body)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await queries.get_domain(conn, team_id, did, for_update=True)
        if row is None:
            raise not_found(domain_id)
        changes = {k: v for k, v in changes.items() if row[k] != v}
        if not changes:
            return row
        await queries.update_domain(conn, did, changes)
        updated = await queries.get_domain(conn, team_id, did)
    await _synced(ctx, row["hostname"], did)
    return updated


async def delete_domain(ctx: Ctx, team_id: uuid.UUID, domain_id: str, *, force: bool) -> Row:
    """Delete a domain: 409 while links are on it, unless ``force``, which disables them first."""
    did = parse_id(domain_id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await queries.get_domain(conn, team_id, did, for_update=True)
        if row is None:
            raise not_found(domain_id)
        codes = await queries.codes_on(conn, did)
        if codes and not force:
            n, them = len(codes), "them" if len(codes) != 1 else "it"
            raise Conflict(
                f"The domain {row['hostname']} still has {n} link{'s' if n != 1 else ''}; move or delete "
                f"{them} first, or delete with ?force=true to disable {them}."
            )
        await queries.disable_links(conn, did)
        handles = await conn.fetch("SELECT handle FROM bio_pages WHERE domain_id = $1 AND deleted_at IS NULL", did)
        await queries.delete_domain(conn, did)  # unbinds the pages
    await cache_sync.sync_domain(ctx.pool, ctx.redis, ctx.settings.serving, row["hostname"])
    for page in handles:
        await cache_sync.sync_page(ctx.pool, ctx.redis, ctx.settings.serving, page["handle"])
    for code in codes:
        await cache_sync.sync_link(ctx.pool, ctx.redis, ctx.settings.serving, code, did)
    return row


async def verify_domain(ctx: Ctx, resolver: dns.asyncresolver.Resolver, team_id: uuid.UUID, domain_id: str) -> Row:
    """Look the challenge up in DNS; verified on a match, else 422 saying what was found (503 when DNS is down)."""
    did = parse_id(domain_id)
    row = await queries.get_domain(ctx.pool, team_id, did)
    if row is None:
        raise not_found(domain_id)
    if row["verified_at"] is not None:
        return row
    name, token = challenge_name(row["hostname"]), row["challenge_token"]
    try:
        values = await txt_values(resolver, name)
    except DnsUnavailable as e:
        raise ServiceUnavailable(f"The DNS resolver did not answer for {name} ({e}); retry in a few seconds.") from e
    if token not in values:
        found = ", ".join(repr(v[:100]) for v in values[:5])
        what = f"holds {found}, not this domain's token" if values else "does not exist yet"
        raise ValidationFailed(
            f"The TXT record {name} {what}. Create a TXT record named {name} with the value {token} "
            "and verify again (DNS changes can take a few minutes to appear).",
            details=[{"field": "hostname", "message": f"needs the TXT record {name} = {token}"}],
        )
    async with ctx.pool.acquire() as conn, conn.transaction():
        await queries.lock_hostname(conn, row["hostname"])
        owner = await queries.owner_of(conn, row["hostname"])
        if owner is not None and owner != team_id:
            raise taken(row["hostname"])
        current = await queries.get_domain(conn, team_id, did, for_update=True)
        if current is None:
            raise not_found(domain_id)
        if current["verified_at"] is None:
            await queries.mark_verified(conn, did)
        row = await queries.get_domain(conn, team_id, did)
    await _synced(ctx, row["hostname"], did)
    return row


async def orphan_visits(pool: asyncpg.Pool, domain_id: uuid.UUID, start: datetime, end: datetime) -> dict[str, int]:
    """Human visits of the domain that reached no link, by kind, in ``[start, end)``."""
    rows = await pool.fetch(
        "SELECT kind, sum(visits)::bigint AS n FROM domain_orphan_hourly "
        "WHERE domain_id = $1 AND hour >= $2 AND hour < $3 GROUP BY kind",
        domain_id,
        start,
        end,
    )
    counts = dict.fromkeys(ORPHAN_KINDS, 0)
    counts.update({r["kind"]: int(r["n"]) for r in rows})
    return counts
