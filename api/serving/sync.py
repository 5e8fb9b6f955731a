"""Write-through from PostgreSQL to the serving cache in Redis.

Every write commits to PostgreSQL first, then calls :func:`sync_link` / :func:`sync_page`, which
re-read the committed row under a per-key advisory lock and write (or delete) the cache record, then
publish the key on the invalidation channel so every edge drops its in-process copy. Re-reading
under the lock makes concurrent writers converge on the latest committed state whatever order they
finish in. When Redis fails, the key is queued in ``cache_repairs`` and the worker retries it
(:func:`repair_pending`), so PostgreSQL and Redis never disagree silently.

Everything here works on one Redis and on a Redis Cluster alike (kit.redis): single-key
commands in non-transactional pipelines, SCAN over every master, and PUBLISH outside the pipeline
in a cluster. The ``ready`` sentinel that tells the worker the cache is whole is one key on one
Redis and one key per master in a cluster (:func:`ready_keys`), since one master can lose its
data alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

import asyncpg
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from api.serving import pages as page_records
from api.serving.config import ServingConfig
from api.serving.domains import domain_record, iter_domain_records
from api.serving.links import LINK_RECORD_COLUMNS, encode_link_row
from kit.postgres import Conn
from kit.redis import is_cluster
from redirector.keys import (
    RESET,
    clicks_key,
    domain_key,
    invalidation_channel,
    link_key,
    page_key,
    ready_key,
    ready_marker_key,
)

log = logging.getLogger("linkedge.cache")

Progress = Callable[[int, int], None]
BATCH = 500


def link_ref(code: str, domain_id: object | None = None) -> str:
    """How a link is named in the cache: its code on the platform's domain, ``{domain id}/{code}``
    on a team's own (the part of :func:`redirector.keys.link_key` after the prefix)."""
    return code if domain_id is None else f"{domain_id}/{code}"


def split_ref(ref: str) -> tuple[str | None, str]:
    domain_id, _, code = ref.rpartition("/")
    return domain_id or None, code


def cache_key(settings: ServingConfig, kind: str, ref: str) -> str:
    if kind == "link":
        domain_id, code = split_ref(ref)
        return link_key(settings.key_prefix, code, domain_id)
    if kind == "page":
        return page_key(settings.key_prefix, ref)
    if kind == "domain":
        return domain_key(settings.key_prefix, ref)
    raise ValueError(f"unknown cache record kind {kind!r}")


async def _current(conn: Conn, settings: ServingConfig, kind: str, ref: str) -> bytes | None:
    if kind == "link":
        domain_id, code = split_ref(ref)
        if domain_id is None:
            sql = f"SELECT {LINK_RECORD_COLUMNS} FROM links WHERE domain_id IS NULL AND code = $1"
            row = await conn.fetchrow(sql, code)
        else:
            sql = f"SELECT {LINK_RECORD_COLUMNS} FROM links WHERE domain_id = $1::uuid AND code = $2"
            row = await conn.fetchrow(sql, domain_id, code)
        return encode_link_row(row) if row else None
    if kind == "domain":
        return await domain_record(conn, ref)
    return await page_records.page_record_by_handle(conn, settings, ref)


async def _sync(pool: asyncpg.Pool, redis: Redis, settings: ServingConfig, kind: str, ref: str) -> bool:
    key = cache_key(settings, kind, ref)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)
            value = await _current(conn, settings, kind, ref)
            await _apply(redis, invalidation_channel(settings.key_prefix), [(key, value)])
        return True
    except RedisError as e:
        log.warning("cache write of %s failed (%s); queued for repair", key, e)
        await pool.execute(
            "INSERT INTO cache_repairs (kind, ref) VALUES ($1, $2) "
            "ON CONFLICT (kind, ref) DO UPDATE SET queued_at = now()",
            kind,
            ref,
        )
        return False


async def sync_link(
    pool: asyncpg.Pool, redis: Redis, settings: ServingConfig, code: str, domain_id: object | None = None
) -> bool:
    """Make the cache record of ``code`` (on ``domain_id``'s domain) match PostgreSQL. False when queued for repair."""
    return await _sync(pool, redis, settings, "link", link_ref(code, domain_id))


async def sync_domain(pool: asyncpg.Pool, redis: Redis, settings: ServingConfig, hostname: str) -> bool:
    """Make the cache record of domain ``hostname`` match PostgreSQL (gone unless verified and live)."""
    return await _sync(pool, redis, settings, "domain", hostname)


async def sync_page(pool: asyncpg.Pool, redis: Redis, settings: ServingConfig, handle: str) -> bool:
    """Make the cache record of bio handle ``handle`` match PostgreSQL (deleted when unpublished)."""
    return await _sync(pool, redis, settings, "page", handle.lower())


async def repair_pending(pool: asyncpg.Pool, redis: Redis, settings: ServingConfig, limit: int = 1000) -> int:
    """Retry queued cache writes; returns how many were repaired."""
    rows = await pool.fetch("SELECT kind, ref, queued_at FROM cache_repairs ORDER BY queued_at LIMIT $1", limit)
    repaired = 0
    for row in rows:
        if await _sync(pool, redis, settings, row["kind"], row["ref"]):
            await pool.execute(
                "DELETE FROM cache_repairs WHERE kind = $1 AND ref = $2 AND queued_at = $3",
                row["kind"],
                row["ref"],
                row["queued_at"],
            )
            repaired += 1
    return repaired


async def rebuild_all(
    pool: asyncpg.Pool,
    redis: Redis,
    settings: ServingConfig,
    progress: Progress | None = None,
    *,
    only_missing: bool = False,
) -> int:
    """Rewrite every link and page record from PostgreSQL; returns how many were written.

    ``only_missing`` (used by the worker's self-healing after Redis lost data) writes with NX so a
    record that a concurrent API write already refreshed is never overwritten with an older one.
    A full rebuild also deletes cached records whose link or page no longer serves. Click counters
    of ``max_clicks`` links that Redis lost are restored from ``scan_count``. Sets the ``ready``
    sentinel at the end.
    """
    prefix = settings.key_prefix
    async with pool.acquire() as conn:
        total = await conn.fetchval("SELECT count(*) FROM links")
        written = 0
        if progress:
            progress(0, total)
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            batch: list[tuple[str, bytes | str]] = []
            counters: list[tuple[str, bytes | str]] = []
            query = f"SELECT {LINK_RECORD_COLUMNS}, scan_count FROM links"
            async for row in conn.cursor(query, prefetch=BATCH):
                domain_id = str(row["domain_id"]) if row["domain_id"] is not None else None
                batch.append((link_key(prefix, row["code"], domain_id), encode_link_row(row)))
                if row["max_clicks"] is not None:
                    counters.append((clicks_key(prefix, str(row["id"])), str(row["scan_count"])))
                if len(batch) >= BATCH:
                    written += await _write_batch(redis, batch, only_missing)
                    batch.clear()
                    if progress:
                        progress(written, total)
            written += await _write_batch(redis, batch, only_missing)
            # Never lower a live counter: the edge's count is ahead of the rolled-up scan_count.
            await _write_batch(redis, counters, only_missing=True)
            pages: list[tuple[str, bytes | str]] = []
            async for handle, value in page_records.iter_page_records(conn, settings):
                pages.append((page_key(prefix, handle), value))
            written += await _write_batch(redis, pages, only_missing)
            domains: list[tuple[str, bytes | str]] = [
                (domain_key(prefix, host), value) async for host, value in iter_domain_records(conn)
            ]
            written += await _write_batch(redis, domains, only_missing)
        if not only_missing:
            await _sweep_links(conn, redis, settings)
            await _sweep_keys(redis, settings, page_key(prefix, ""), {key for key, _ in pages})
            await _sweep_keys(redis, settings, domain_key(prefix, ""), {key for key, _ in domains})
    await mark_ready(redis, settings)
    # The records above were written without announcing each key: tell every edge to forget what
    # it cached (misses included), so links are served again as soon as they are back.
    await _announce(redis, invalidation_channel(settings.key_prefix), RESET)
    if progress:
        progress(total, total)
    return written


async def _announce(redis: Redis, channel: str, message: str) -> None:
    if is_cluster(redis):
        await redis.execute_command("PUBLISH", channel, message)  # type: ignore[no-untyped-call]
    else:
        await redis.publish(channel, message)


async def _write_batch(redis: Redis, batch: list[tuple[str, bytes | str]], only_missing: bool) -> int:
    if not batch:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for key, value in batch:
            pipe.set(key, value, nx=only_missing)
        await pipe.execute()
    return len(batch)


async def _sweep_links(conn: Conn, redis: Redis, settings: ServingConfig) -> None:
    """Delete cached link records whose link is gone, and tell the edges."""
    prefix = link_key(settings.key_prefix, "")
    channel = invalidation_channel(settings.key_prefix)
    keys: list[str] = []
    async for key in redis.scan_iter(match=prefix + "*", count=1000):
        keys.append(key.decode() if isinstance(key, bytes) else key)
        if len(keys) >= BATCH:
            await _drop_stale(conn, redis, prefix, channel, keys)
            keys.clear()
    await _drop_stale(conn, redis, prefix, channel, keys)


async def _drop_stale(conn: Conn, redis: Redis, prefix: str, channel: str, keys: list[str]) -> None:
    if not keys:
        return
    refs = [k[len(prefix) :] for k in keys]
    rows = await conn.fetch(
        "SELECT CASE WHEN domain_id IS NULL THEN code ELSE domain_id::text || '/' || code END AS ref "
        "FROM links WHERE code = ANY($1::text[])",
        list({split_ref(ref)[1] for ref in refs}),
    )
    live = {r["ref"] for r in rows}
    await _unlink(redis, channel, [prefix + ref for ref in refs if ref not in live])


async def _sweep_keys(redis: Redis, settings: ServingConfig, match_prefix: str, live: set[str]) -> None:
    """Delete every cached key under ``match_prefix`` that is not in ``live``, and tell the edges."""
    stale: list[str] = []
    async for key in redis.scan_iter(match=match_prefix + "*", count=1000):
        name = key.decode() if isinstance(key, bytes) else key
        if name not in live:
            stale.append(name)
    await _unlink(redis, invalidation_channel(settings.key_prefix), stale)


async def _unlink(redis: Redis, channel: str, keys: list[str]) -> None:
    for i in range(0, len(keys), BATCH):
        await _apply(redis, channel, [(key, None) for key in keys[i : i + BATCH]])


async def _apply(redis: Redis, channel: str, changes: list[tuple[str, bytes | None]]) -> None:
    """Write (a value) or delete (None) each key, then announce every key on ``channel``.

    One key per command, so no command spans two cluster slots. A cluster pipeline refuses
    PUBLISH, so there the announcements follow the pipeline (whichever node gets one broadcasts it).
    """
    cluster = is_cluster(redis)
    async with redis.pipeline(transaction=False) as pipe:
        for key, value in changes:
            if value is None:
                pipe.unlink(key)
            else:
                pipe.set(key, value)
        if not cluster:
            for key, _ in changes:
                pipe.publish(channel, key)
        await pipe.execute()
    if cluster:
        for key, _ in changes:
            await redis.execute_command("PUBLISH", channel, key)  # type: ignore[no-untyped-call]


async def ready_keys(redis: Redis, settings: ServingConfig) -> list[str]:
    """The ``ready`` sentinel keys: :func:`redirector.cache.ready_key` on one Redis; in a cluster, one
    per master, each with a hash tag (``{r<N>}``, the first N that lands there) in a slot that master
    serves, so a master that comes back empty is noticed even when the others kept their data.

    After a resharding a master may need a new tag: its marker is missing once, which costs one
    (harmless, ``SET NX``) rebuild.
    """
    base = ready_key(settings.key_prefix)
    if not is_cluster(redis):
        return [base]
    cluster = cast(RedisCluster, redis)
    await cluster.initialize()  # no-op once the slot map is loaded
    owners = {node.name for node in cluster.get_primaries()}
    keys: list[str] = []
    for n in range(64 * 16384):
        if not owners:
            break
        key = ready_marker_key(settings.key_prefix, n)
        node = cluster.get_node_from_key(key)
        if node is not None and node.name in owners:
            owners.discard(node.name)
            keys.append(key)
    return keys  # masters serving no slot hold no data, so they need no marker


async def mark_ready(redis: Redis, settings: ServingConfig) -> None:
    """Write every ``ready`` sentinel (after a full build)."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in await ready_keys(redis, settings):
            pipe.set(key, "1")
        await pipe.execute()


async def is_ready(redis: Redis, settings: ServingConfig) -> bool:
    """False when any ``ready`` sentinel is gone: some (or all) of the cache was lost."""
    keys = await ready_keys(redis, settings)
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.exists(key)
        found = await pipe.execute()
    return all(found)
