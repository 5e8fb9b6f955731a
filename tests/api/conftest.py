"""API test fixtures: the app on a clean slate, teams with keys, plain database and Redis access, the
edge on the same Redis. Helpers that are not fixtures are in tests/api/support.py and tests/support.py.

Fixtures are synchronous (TestClient tests are) and run their coroutines on a worker thread, so
they also work from async tests whose event loop is already running.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import pytest
import redis
from fastapi.testclient import TestClient
from redis.asyncio import Redis as AsyncRedis

from api.app import create_app
from api.settings import Settings
from kit.postgres import create_pool
from redirector.app import create_app as create_edge
from redirector.cache import PageRecord, decode_page
from redirector.keys import page_key
from redirector.settings import Settings as EdgeSettings
from tests.api.support import Api
from tests.support import TeamKey, run_sync, sql, team_key

T = TypeVar("T")


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, T]], T]:
    """``run(coro)``: await a coroutine from a synchronous test (see :func:`tests.support.run_sync`)."""
    return run_sync


@pytest.fixture
def db(settings: Settings) -> Callable[..., list[asyncpg.Record]]:
    """``db(sql, *args)`` -> rows, on its own short-lived connection."""
    return functools.partial(sql, settings.database_url)


@pytest.fixture
def make_key(settings: Settings) -> Callable[..., TeamKey]:
    """``make_key(team="acme", plan="pro", abilities="all")``: the team is created on first use."""
    return functools.partial(team_key, settings.database_url)


@pytest.fixture
def make_api(client: TestClient, make_key: Callable[..., TeamKey], settings: Settings) -> Callable[..., Api]:
    """``make_api(team="acme", plan="pro", abilities="all")``: a key of the team on the test client."""

    def make(team: str = "acme", plan: str = "pro", abilities: str = "all") -> Api:
        return Api(client, make_key(team, plan, abilities), settings.database_url)

    return make


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    """Team ``acme`` on the pro plan with a key that may do everything."""
    return make_api()


@pytest.fixture
def sync_redis(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cache(sync_redis: redis.Redis, settings: Settings) -> Callable[[str], PageRecord | None]:
    """``cache(handle)``: a page's record in Redis as the edge reads it, or None."""

    def read(handle: str) -> PageRecord | None:
        data = sync_redis.get(page_key(settings.key_prefix, handle))
        return decode_page(data) if data is not None else None

    return read


@pytest.fixture
def edge(env: dict[str, str]) -> Iterator[TestClient]:
    """The real edge app on the same Redis, redirects not followed."""
    # No in-process cache: every hit reads Redis, so a write is visible at once without waiting on pub/sub.
    settings = EdgeSettings.from_env({**env, "LOCAL_CACHE": "0"})
    with TestClient(create_edge(settings), base_url="http://sho.rt", follow_redirects=False) as test_client:
        yield test_client


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
