"""Link use cases: validation past the schema, transactions, plan limits and the cache write-through.

Every write commits to PostgreSQL first and then calls :func:`api.serving.sync.sync_link` for each
code it touched (old and new when a code changes), so the cache never holds a record the database
lacks. Creation runs under a per-team advisory lock with the count checked inside the transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.errors import ApiError, Conflict, NotFound, PaymentRequired, ValidationFailed
from api.links import queries
from api.links.codes import random_code
from api.links.objects import merge_utm, sent_urls
from api.links.schemas import LinkCreate, LinkUpdate, error_details, sentence
from api.pagination import PageParams, paginate
from api.plans import Plan
from api.serving import sync as cache_sync
from api.settings import Settings
from redirector.hosts import canonical_host
from redirector.keys import clicks_key
from redirector.passwords import hash_password_async
from redirector.rules import RuleError, parse_rules

Row = Any  # an asyncpg.Record of the links table
CODE_ATTEMPTS = 8  # 62**7 codes: a second collision in a row means something else is wrong


@dataclass(frozen=True)
class ItemError:
    """One failed item of a bulk create or import: its position, error code and one sentence."""

    index: int
    error: str  # conflict | validation_failed | plan_limit
    message: str
    details: tuple[dict[str, str], ...] = ()  # the fields at fault, when known

    def as_api_error(self) -> ApiError:
        kind = {"conflict": Conflict, "plan_limit": PaymentRequired}.get(self.error, ValidationFailed)
        return kind(self.message, details=self.details)


@dataclass
class BulkResult:
    created: list[Row] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


def parse_id(link_id: str) -> uuid.UUID:
    """A link id from a path; anything that isn't a UUID simply names no link (404)."""
    try:
        return uuid.UUID(link_id)
    except ValueError:
        raise not_found(link_id) from None


def not_found(link_id: object) -> NotFound:
    return NotFound(f"No link with id '{str(link_id)[:64]}' exists in this team.")


def invalid(field: str, message: str) -> ValidationFailed:
    details = [{"field": field, "message": message}]
    return ValidationFailed(sentence(details), details=details)


def check_rules(raw: Any) -> list[dict[str, Any]]:
    """Normalised routing rules, or a 422 naming each bad field (``routing_rules[0].conditions.device``)."""
    try:
        rules = parse_rules(raw)
    except RuleError as e:
        details = [{"field": f, "message": m} for f, m in e.errors]
        raise ValidationFailed(sentence(details), details=details) from None
    return rules


async def prepare(body: LinkCreate) -> dict[str, Any]:
    """Column values for a new link (``code`` None means: generate one)."""
    utm = body.utm.params() if body.utm else {}
    return {
        "code": body.custom_slug,
        "url": body.url,
        "destination": merge_utm(body.url, utm),
        "enabled": body.enabled,
        "labels": body.labels or [],
        "routing_rules": check_rules(body.routing_rules),
        "redirect_type": body.redirect_type,
        "forward_query": body.forward_query,
        "max_clicks": body.max_clicks,
        "password_hash": await hash_password_async(body.password) if body.password is not None else None,
        "title": body.title,
        "notes": body.notes,
        "utm": utm,
        "expires_at": body.expires_at,
        "domain": body.domain,  # a hostname: resolved to domain_id inside the insert's transaction
        "expired_url": body.expired_url,
        "crawlable": body.crawlable,
    }


async def _prepare_item(index: int, item: Any) -> dict[str, Any] | ItemError:
    if not isinstance(item, dict):
        return ItemError(index, "validation_failed", "Each item must be a link object with at least a 'url'.")
    try:
        return await prepare(LinkCreate.model_validate(item))
    except ValidationError as e:
        return ItemError(index, "validation_failed", sentence(error_details(e)))
    except ValidationFailed as e:
        return ItemError(index, "validation_failed", e.message)


def plan_limit_message(plan: Plan) -> str:
    return f"The {plan.name} plan allows {plan.max_links:,} links; delete some or upgrade to create more."


def domain_problem(hostname: str) -> str:
    return f"must be one of this team's domains ('{hostname[:100]}' is not); add it with POST /api/v1/domains first"


async def resolve_domain(conn: Any, team_id: uuid.UUID, hostname: str | None, platform: frozenset[str]) -> Any:
    """``domain_id`` for a link on ``hostname`` (None: the platform's), or a :class:`ValidationFailed`."""
    if hostname is None or hostname in platform:
        return None
    row = await queries.team_domain(conn, team_id, hostname)
    if row is None:
        raise invalid("domain", domain_problem(hostname))
    if row["kind"] == "bio":
        raise invalid("domain", f"must be a links domain ('{hostname}' serves bio pages only); set its kind to both")
    return row["id"]


async def _insert_one(
    conn: Any, team_id: uuid.UUID, index: int, values: dict[str, Any], platform: frozenset[str]
) -> Row | ItemError:
    values = dict(values)
    hostname = values.pop("domain", None)
    try:
        values["domain_id"] = await resolve_domain(conn, team_id, hostname, platform)
    except ValidationFailed as e:
        return ItemError(index, "validation_failed", e.message, tuple(e.details))
    on = f" on {hostname}" if values["domain_id"] is not None else ""
    custom = values["code"] is not None
    for _ in range(CODE_ATTEMPTS):
        code = values["code"] if custom else random_code()
        try:
            async with conn.transaction():  # a savepoint: one bad item must not abort the others
                row = await queries.insert_link(conn, uuid.uuid4(), team_id, {**values, "code": code})
                if row is not None:
                    await queries.record_destinations(
                        conn, row["id"], sent_urls(row["destination"], row["routing_rules"])
                    )
        except asyncpg.DataError as e:
            return ItemError(index, "validation_failed", f"The link cannot be stored: {e}.")
        if row is not None:
            return row
        if custom:
            return ItemError(index, "conflict", f"The slug '{code}' is already in use{on}.")
    return ItemError(index, "conflict", "No free random short code was found; please retry.")


async def _insert_all(
    pool: asyncpg.Pool,
    team_id: uuid.UUID,
    plan: Plan,
    items: Sequence[tuple[int, dict[str, Any]]],
    platform: frozenset[str],
) -> tuple[list[Row], list[ItemError]]:
    created: list[Row] = []
    errors: list[ItemError] = []
    if not items:
        return created, errors
    async with pool.acquire() as conn, conn.transaction():
        await queries.lock_team_links(conn, team_id)
        count = await queries.count_links(conn, team_id)
        for index, values in items:
            if count >= plan.max_links:
                errors.append(ItemError(index, "plan_limit", plan_limit_message(plan)))
                continue
            result = await _insert_one(conn, team_id, index, values, platform)
            if isinstance(result, ItemError):
                errors.append(result)
            else:
                created.append(result)
                count += 1
    return created, errors


async def create_link(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, team_id: uuid.UUID, plan: Plan, body: LinkCreate
) -> Row:
    """Create one link; raises 402/409/422 as :class:`ApiError`."""
    values = await prepare(body)
    created, errors = await _insert_all(pool, team_id, plan, [(0, values)], settings.platform_hosts)
    if errors:
        raise errors[0].as_api_error()
    await _synced(pool, redis, settings, created[0])
    return created[0]


async def create_many(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, team_id: uuid.UUID, plan: Plan, items: Sequence[Any]
) -> BulkResult:
    """Create every valid item in one transaction; report the others by index. Used by bulk and import."""
    prepared = await asyncio.gather(*(_prepare_item(i, item) for i, item in enumerate(items)))
    errors = [p for p in prepared if isinstance(p, ItemError)]
    valid = [(i, p) for i, p in enumerate(prepared) if not isinstance(p, ItemError)]
    created, insert_errors = await _insert_all(pool, team_id, plan, valid, settings.platform_hosts)
    for row in created:
        await _synced(pool, redis, settings, row)
    return BulkResult(created, sorted(errors + insert_errors, key=lambda e: e.index))


async def _synced(pool: asyncpg.Pool, redis: Redis, settings: Settings, row: Row, *, robots: bool = False) -> None:
    """Write the link's cache record; and its domain's, whose robots.txt lists the crawlable links."""
    await cache_sync.sync_link(pool, redis, settings.serving, row["code"], row["domain_id"])
    if row["domain_id"] is not None and (robots or row["crawlable"]):
        await cache_sync.sync_domain(pool, redis, settings.serving, row["domain_hostname"])


async def get_link(pool: asyncpg.Pool, team_id: uuid.UUID, link_id: str) -> Row:
    row = await queries.get_link(pool, team_id, parse_id(link_id))
    if row is None:
        raise not_found(link_id)
    return row


async def domain_filter(
    conn: queries.Executor, settings: Settings, team_id: uuid.UUID, domain: str | None
) -> uuid.UUID | None | Literal[False]:
    """A ``domain`` filter (a hostname): the team domain's id, None for the service's own hosts,
    False when not given; 422 naming ``domain`` for a hostname that is none of these."""
    if not domain:
        return False
    hostname = canonical_host(domain.encode("utf-8"))
    if hostname in settings.platform_hosts:
        return None
    row = await queries.team_domain(conn, team_id, hostname)
    if row is None:
        raise ValidationFailed.field("domain", domain_problem(hostname))
    return uuid.UUID(str(row["id"]))


async def list_links(
    pool: asyncpg.Pool,
    settings: Settings,
    team_id: uuid.UUID,
    page: PageParams,
    labels: Sequence[str] = (),
    search: str | None = None,
    domain: str | None = None,
) -> tuple[list[Row], str | None]:
    """A page of the team's links; ``domain`` (a hostname) keeps those on one domain."""
    domain_id = await domain_filter(pool, settings, team_id, domain)
    rows: list[Any] = await queries.list_links(
        pool,
        team_id,
        labels=labels,
        search=search or None,
        domain=domain_id,
        after=page.after,
        limit=page.per_page + 1,
    )
    return paginate(rows, page.per_page)


async def _changes(body: LinkUpdate) -> dict[str, Any]:
    """Column changes that don't depend on the stored row."""
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    if "custom_slug" in given:
        changes["code"] = body.custom_slug
    for name in (
        "enabled",
        "redirect_type",
        "forward_query",
        "max_clicks",
        "title",
        "notes",
        "expires_at",
        "expired_url",
        "crawlable",
    ):
        if name in given:
            changes[name] = getattr(body, name)
    if "labels" in given:
        changes["labels"] = body.labels or []
    if "routing_rules" in given:
        changes["routing_rules"] = check_rules(body.routing_rules)
    if "password" in given:
        changes["password_hash"] = await hash_password_async(body.password) if body.password is not None else None
    return changes


async def update_link(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, team_id: uuid.UUID, link_id: str, body: LinkUpdate
) -> Row:
    """Apply a partial update; a changed code frees the old one at once."""
    lid = parse_id(link_id)
    changes = await _changes(body)  # outside the transaction: password hashing is slow
    given = body.model_fields_set
    async with pool.acquire() as conn, conn.transaction():
        row = await queries.get_link(conn, team_id, lid, for_update=True)
        if row is None:
            raise not_found(link_id)
        if "domain" in given:
            changes["domain_id"] = await resolve_domain(conn, team_id, body.domain, settings.platform_hosts)
        if "url" in given or "utm" in given:
            url = body.url if body.url is not None else row["url"]
            utm = (body.utm.params() if body.utm else {}) if "utm" in given else dict(row["utm"])
            changes.update(url=url, utm=utm, destination=merge_utm(url, utm))
        changes = {k: v for k, v in changes.items() if row[k] != v}
        if not changes:
            return row
        moved = "code" in changes or "domain_id" in changes
        handles = await queries.page_handles_using(conn, lid) if moved else []
        try:
            updated = await queries.update_link(conn, lid, changes)
        except asyncpg.UniqueViolationError:
            on = f" on {body.domain}" if changes.get("domain_id", row["domain_id"]) is not None else ""
            raise Conflict(f"The slug '{changes.get('code', row['code'])}' is already in use{on}.") from None
        except asyncpg.DataError as e:
            raise ValidationFailed(f"The link cannot be stored: {e}.") from None
        if changes.keys() & {"destination", "routing_rules"}:
            # The old URLs too: a link written before link_destinations existed may lack them.
            urls = sent_urls(row["destination"], row["routing_rules"]) + sent_urls(
                updated["destination"], updated["routing_rules"]
            )
            await queries.record_destinations(conn, lid, urls)
    robots = "crawlable" in changes or "enabled" in changes or moved
    await _synced(pool, redis, settings, row, robots=robots)
    if moved:  # the old record and domain are done above; now the new ones
        await _synced(pool, redis, settings, updated, robots=robots)
    for handle in handles:
        await cache_sync.sync_page(pool, redis, settings.serving, handle)
    return updated


async def delete_link(pool: asyncpg.Pool, redis: Redis, settings: Settings, team_id: uuid.UUID, link_id: str) -> Row:
    """Delete a link; its code stops redirecting at once and bio pages using it are re-rendered."""
    lid = parse_id(link_id)
    async with pool.acquire() as conn, conn.transaction():
        row = await queries.get_link(conn, team_id, lid, for_update=True)
        if row is None:
            raise not_found(link_id)
        handles = await queries.page_handles_using(conn, lid)  # before ON DELETE SET NULL forgets them
        await queries.delete_link(conn, team_id, lid)
    await _synced(pool, redis, settings, row)
    for handle in handles:
        await cache_sync.sync_page(pool, redis, settings.serving, handle)
    try:
        await redis.unlink(clicks_key(settings.key_prefix, str(lid)))
    except RedisError:
        pass  # an orphaned max_clicks counter is harmless: nothing reads it once the record is gone
    return row
