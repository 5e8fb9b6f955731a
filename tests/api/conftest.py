"""API test fixtures: the app on a clean slate, teams with keys, and plain database access.

Helpers are synchronous (TestClient tests are) and run their coroutines on a worker thread, so
they also work from async tests whose event loop is already running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import pytest
import redis
from fastapi.testclient import TestClient
from redis.asyncio import Redis as AsyncRedis

from api.app import create_app
from api.settings import Settings
from api.teams import create_key, create_team
from kit.postgres import create_pool

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own loop in a worker thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


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


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, T]], T]:
    """``run(coro)``: await a coroutine from a synchronous test (see :func:`run_sync`)."""
    return run_sync


@pytest.fixture
def db(settings: Settings) -> Callable[..., list[asyncpg.Record]]:
    """``db(sql, *args)`` -> rows, on its own short-lived connection."""

    def query(sql: str, *args: Any) -> list[asyncpg.Record]:
        async def go() -> list[asyncpg.Record]:
            pool = await create_pool(settings.database_url, min_size=1, max_size=1)
            try:
                return list(await pool.fetch(sql, *args))
            finally:
                await pool.close()

        return run_sync(go())

    return query


@pytest.fixture
def make_key(settings: Settings) -> Callable[..., TeamKey]:
    """``make_key(team="acme", plan="pro", abilities="all")``: the team is created on first use."""

    def make(team: str = "acme", plan: str = "pro", abilities: str | list[str] = "all") -> TeamKey:
        async def go() -> TeamKey:
            conn = await asyncpg.connect(settings.database_url)
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

    return make


@pytest.fixture
def sync_redis(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def ctx(env: dict[str, str]) -> AsyncIterator[tuple[Settings, asyncpg.Pool, AsyncRedis, UUID]]:
    """Settings, a PostgreSQL pool, an asyncio Redis client and a team on the free plan, for service-level tests."""
    settings = Settings.from_env(env)
    pool = await create_pool(settings.database_url)
    client = AsyncRedis.from_url(settings.redis_url)
    team = uuid4()
    await pool.execute("INSERT INTO teams (id, name, plan) VALUES ($1, 'acme', 'free')", team)
    try:
        yield settings, pool, client, team
    finally:
        await client.aclose()
        await pool.close()
