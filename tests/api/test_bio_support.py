"""Fixtures and helpers shared by the bio page tests (imported by the other test_bio_* modules).

Everything runs against the real PostgreSQL and Redis of tests/conftest.py: the API through
``TestClient(create_app(...))``, teams and keys through :mod:`api.teams`. Modules import the
``*_fixture`` functions they use; pytest knows them by their ``name``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from starlette.testclient import TestClient

from api import teams
from api.app import create_app
from api.settings import Settings
from redirector.cache import PageRecord, decode_page
from redirector.keys import page_key

API = "/api/v1"


async def _create_team(database_url: str, name: str, plan: str, abilities: str) -> tuple[uuid.UUID, str]:
    conn = await asyncpg.connect(database_url)
    try:
        team = await teams.create_team(conn, name, plan)
        key = await teams.create_key(conn, team.id, abilities)
        return team.id, key
    finally:
        await conn.close()


async def _key_for(database_url: str, team_id: uuid.UUID, abilities: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        return await teams.create_key(conn, team_id, abilities)
    finally:
        await conn.close()


def sql(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on a fresh connection (tests are synchronous around the TestClient)."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


@dataclass
class Api:
    """A team's API key on the test client; paths are relative to /api/v1."""

    client: TestClient
    team_id: uuid.UUID
    key: str
    database_url: str

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return self.client.request(method, API + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def with_abilities(self, abilities: str) -> Api:
        key = asyncio.run(_key_for(self.database_url, self.team_id, abilities))
        return Api(self.client, self.team_id, key, self.database_url)

    def add_link(self, code: str, url: str = "https://example.com/promo", title: str | None = None) -> str:
        """A short link row of this team (inserted directly: the links API is another module's)."""
        link_id = uuid.uuid4()
        sql(
            self.database_url,
            "INSERT INTO links (id, team_id, code, url, destination, title) VALUES ($1, $2, $3, $4, $4, $5)",
            link_id,
            self.team_id,
            code,
            url,
            title,
        )
        return str(link_id)


@pytest.fixture(name="client")
def client_fixture(env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(Settings.from_env(env))) as test_client:
        yield test_client


@pytest.fixture(name="make_api")
def make_api_fixture(client: TestClient, env: dict[str, str]) -> Callable[..., Api]:
    def make(name: str = "acme", plan: str = "pro", abilities: str = "all") -> Api:
        team_id, key = asyncio.run(_create_team(env["DATABASE_URL"], name, plan, abilities))
        return Api(client, team_id, key, env["DATABASE_URL"])

    return make


@pytest.fixture(name="api")
def api_fixture(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture(name="cache")
def cache_fixture(env: dict[str, str]) -> Iterator[Callable[[str], PageRecord | None]]:
    """Read a page's record from Redis, as the edge would."""
    r = redis.Redis.from_url(env["REDIS_URL"])

    def read(handle: str) -> PageRecord | None:
        data = r.get(page_key(env["KEY_PREFIX"], handle))
        return decode_page(data) if data is not None else None

    try:
        yield read
    finally:
        r.close()


def data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def error_fields(response: httpx.Response, status: int = 422) -> list[str]:
    assert response.status_code == status, response.text
    return [d["field"] for d in response.json()["error"].get("details", [])]


@pytest.fixture(name="edge")
def edge_fixture(env: dict[str, str]) -> Iterator[TestClient]:
    """The real edge app on the same Redis, without its in-process cache (every hit reads Redis)."""
    from redirector.app import create_app as create_edge
    from redirector.settings import Settings as EdgeSettings

    app = create_edge(EdgeSettings.from_env({**env, "LOCAL_CACHE": "0"}))
    with TestClient(app, base_url="http://sho.rt", follow_redirects=False) as test_client:
        yield test_client


def sync_link(env: dict[str, str], code: str) -> None:
    """Write a short link's cache record, as the links API does after its commit."""
    from redis.asyncio import Redis

    from api.serving import sync as cache_sync
    from kit.postgres import create_pool

    async def go() -> None:
        settings = Settings.from_env(env)
        pool = await create_pool(settings.database_url)
        r = Redis.from_url(settings.redis_url)
        try:
            await cache_sync.sync_link(pool, r, settings, code)
        finally:
            await r.aclose()
            await pool.close()

    asyncio.run(go())
