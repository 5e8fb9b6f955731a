"""Plain helpers for tests in any folder (no fixtures): the checkout's root, a free loopback port,
waiting for a condition, a coroutine from synchronous code, one SQL statement on a connection of
its own, and a team with an API key.

Each runs its coroutine on a worker thread with a loop of its own, so it also works from async tests
whose event loop is already running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from api.teams import create_key, create_team
from kit.postgres import create_pool

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port nothing listens on (once the probing socket is closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "condition") -> None:
    """Await ``check()`` until it is true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own loop in a worker thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def sql(database_url: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of one statement, run on a short-lived connection (jsonb as Python values, as in the app)."""

    async def go() -> list[asyncpg.Record]:
        pool = await create_pool(database_url, min_size=1, max_size=1)
        try:
            return list(await pool.fetch(statement, *args))
        finally:
            await pool.close()

    return run_sync(go())


@dataclass(frozen=True)
class TeamKey:
    team_id: UUID
    team: str
    plan: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def prefix(self) -> str:
        return self.key.removeprefix("lk_").split(".", 1)[0]


def team_key(database_url: str, team: str = "acme", plan: str = "pro", abilities: str | list[str] = "all") -> TeamKey:
    """A new API key of ``team``; the team is created on ``plan`` the first time it is named."""

    async def go() -> TeamKey:
        conn = await asyncpg.connect(database_url)
        try:
            row = await conn.fetchrow("SELECT id, plan FROM teams WHERE name = $1", team)
            if row is None:
                created = await create_team(conn, team, plan)
                team_id, team_plan = created.id, created.plan
            else:
                team_id, team_plan = row["id"], row["plan"]
            key = await create_key(conn, team_id, abilities)
        finally:
            await conn.close()
        return TeamKey(team_id, team, team_plan, key)

    return run_sync(go())
