"""Teams and API keys: used by the admin CLI (and tests)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from api.auth import generate_key, parse_abilities
from api.errors import Conflict
from api.plans import get_plan

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


@dataclass(frozen=True)
class Team:
    id: uuid.UUID
    name: str
    plan: str
    created_at: datetime


def _team(row: asyncpg.Record) -> Team:
    return Team(id=row["id"], name=row["name"], plan=row["plan"], created_at=row["created_at"])


async def create_team(conn: Conn, name: str, plan: str = "free") -> Team:
    get_plan(plan)
    name = name.strip()
    if not name:
        raise ValueError("team name must not be empty")
    row = await conn.fetchrow(
        "INSERT INTO teams (id, name, plan) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING RETURNING *",
        uuid.uuid4(),
        name,
        plan,
    )
    if row is None:
        raise Conflict(f"A team named {name!r} already exists.")
    return _team(row)


async def get_team_by_name(conn: Conn, name: str) -> Team | None:
    row = await conn.fetchrow("SELECT * FROM teams WHERE name = $1", name)
    return _team(row) if row else None


async def set_plan(conn: Conn, name: str, plan: str) -> Team | None:
    get_plan(plan)
    row = await conn.fetchrow("UPDATE teams SET plan = $2 WHERE name = $1 RETURNING *", name, plan)
    return _team(row) if row else None


async def create_key(conn: Conn, team_id: uuid.UUID, abilities: list[str] | str, name: str = "") -> str:
    """Create a key and return it in full; only the hash of its secret is stored."""
    wanted = parse_abilities(abilities)
    full, prefix, secret_hash = generate_key()
    await conn.execute(
        "INSERT INTO api_keys (id, team_id, prefix, secret_hash, name, abilities) VALUES ($1, $2, $3, $4, $5, $6)",
        uuid.uuid4(),
        team_id,
        prefix,
        secret_hash,
        name,
        wanted,
    )
    return full


async def revoke_key(conn: Conn, prefix: str) -> bool:
    prefix = prefix.removeprefix("lk_").split(".", 1)[0]
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL", prefix
    )
    return status.endswith(" 1")
