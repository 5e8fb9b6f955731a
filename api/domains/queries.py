"""SQL for domains. Every read is scoped to a team and skips deleted domains (tombstones)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from kit.postgres import Conn

Executor = Conn | asyncpg.Pool

# Settings a write may set; PATCH builds its SET list from these names only.
WRITABLE = ("kind", "root_url", "not_found_url", "expired_url", "apple_app_site_association", "assetlinks")
# Each domain with the number of links on it, for the API object.
_SELECT = (
    "SELECT d.*, (SELECT count(*) FROM links l WHERE l.domain_id = d.id) AS links_count FROM domains d "
    "WHERE d.deleted_at IS NULL"
)


async def lock_team_domains(conn: Conn, team_id: uuid.UUID) -> None:
    """Serialise domain creation per team, so the plan's limit can't be overshot."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"domains:count:{team_id}")


async def lock_hostname(conn: Conn, hostname: str) -> None:
    """Serialise claims and proofs of one hostname across teams until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"domains:host:{hostname}")


async def count_domains(conn: Conn, team_id: uuid.UUID) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM domains WHERE team_id = $1 AND deleted_at IS NULL", team_id)
    return count


async def owner_of(conn: Conn, hostname: str) -> uuid.UUID | None:
    """The team that has proved ``hostname``, if any."""
    owner: uuid.UUID | None = await conn.fetchval(
        "SELECT team_id FROM domains WHERE hostname = $1 AND verified_at IS NOT NULL AND deleted_at IS NULL",
        hostname,
    )
    return owner


async def insert_domain(
    conn: Conn, team_id: uuid.UUID, hostname: str, token: str, values: Mapping[str, Any], verified: bool
) -> Any:
    """Insert a domain; None when the team already has this hostname."""
    columns = [c for c in WRITABLE if c in values]
    names = ", ".join(["id", "team_id", "hostname", "challenge_token", "verified_at", *columns])
    params = ", ".join(
        ["$1, $2, $3, $4, CASE WHEN $5::boolean THEN clock_timestamp() END"]
        + [f"${i}" for i in range(6, 6 + len(columns))]
    )
    sql = (
        f"INSERT INTO domains ({names}) VALUES ({params}) "
        "ON CONFLICT (team_id, hostname) WHERE deleted_at IS NULL DO NOTHING RETURNING id"
    )
    new_id = await conn.fetchval(sql, uuid.uuid4(), team_id, hostname, token, verified, *(values[c] for c in columns))
    return None if new_id is None else await get_domain(conn, team_id, new_id)


async def get_domain(conn: Executor, team_id: uuid.UUID, domain_id: uuid.UUID, *, for_update: bool = False) -> Any:
    sql = f"{_SELECT} AND d.id = $1 AND d.team_id = $2"
    if for_update:
        sql += " FOR UPDATE OF d"
    return await conn.fetchrow(sql, domain_id, team_id)


async def get_by_hostname(conn: Executor, team_id: uuid.UUID, hostname: str) -> Any:
    return await conn.fetchrow(f"{_SELECT} AND d.hostname = $1 AND d.team_id = $2", hostname, team_id)


async def list_domains(
    conn: Executor, team_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """Newest first, keyset-paginated on ``(created_at, id)``."""
    args: list[Any] = [team_id]
    where = ""
    if after is not None:
        args.extend(after)
        where = " AND (d.created_at, d.id) < ($2, $3)"
    args.append(limit)
    sql = f"{_SELECT} AND d.team_id = $1{where} ORDER BY d.created_at DESC, d.id DESC LIMIT ${len(args)}"
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


async def update_domain(conn: Conn, domain_id: uuid.UUID, changes: Mapping[str, Any]) -> None:
    columns = [c for c in changes if c in WRITABLE]
    if len(columns) != len(changes):
        raise ValueError(f"not writable: {sorted(set(changes) - set(WRITABLE))}")
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    await conn.execute(
        f"UPDATE domains SET {sets}, updated_at = clock_timestamp() WHERE id = $1",
        domain_id,
        *(changes[c] for c in columns),
    )


async def mark_verified(conn: Conn, domain_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE domains SET verified_at = clock_timestamp(), updated_at = clock_timestamp() WHERE id = $1",
        domain_id,
    )


async def codes_on(conn: Conn, domain_id: uuid.UUID) -> list[str]:
    rows = await conn.fetch("SELECT code FROM links WHERE domain_id = $1", domain_id)
    return [r["code"] for r in rows]


async def disable_links(conn: Conn, domain_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE links SET enabled = false, updated_at = clock_timestamp() WHERE domain_id = $1 AND enabled",
        domain_id,
    )


async def delete_domain(conn: Conn, domain_id: uuid.UUID) -> None:
    """A tombstone: the hostname is free again; links still on it keep pointing at the row, disabled."""
    await conn.execute("UPDATE bio_pages SET domain_id = NULL WHERE domain_id = $1", domain_id)
    await conn.execute(
        "UPDATE domains SET deleted_at = clock_timestamp(), updated_at = clock_timestamp() WHERE id = $1",
        domain_id,
    )
