"""Helpers for the API tests (the fixtures are in conftest.py): a team's key on the test client,
response unwrapping, and writing a short link's cache record as the links API does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis
from starlette.testclient import TestClient

from api.serving import sync as cache_sync
from api.settings import Settings
from kit.postgres import create_pool
from tests.support import TeamKey, run_sync, sql, team_key

API = "/api/v1"


@dataclass
class Api:
    """A team's API key on the test client; paths are relative to /api/v1."""

    client: TestClient
    key: TeamKey
    database_url: str

    @property
    def team_id(self) -> uuid.UUID:
        return self.key.team_id

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.key.headers, **kwargs.pop("headers", {})}
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
        """Another key of the same team, with these abilities."""
        return Api(self.client, team_key(self.database_url, self.key.team, abilities=abilities), self.database_url)

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


def data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def error_fields(response: httpx.Response, status: int = 422) -> list[str]:
    assert response.status_code == status, response.text
    return [d["field"] for d in response.json()["error"].get("details", [])]


def publish(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    """Create a bio page from ``body``, then publish it; the published page."""
    page = data(api.post("/bio-pages", json=body), 201)
    return data(api.patch(f"/bio-pages/{page['id']}", json={"is_published": True}))


def sync_link(env: dict[str, str], code: str) -> None:
    """Write a short link's cache record, as the links API does after its commit."""

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


def roll_up(env: dict[str, str], *, settle: float = 0.2) -> int:
    """Apply every stream entry as a worker would (after ``settle`` seconds for an edge's flush);
    returns the entries consumed."""
    from workers.rollup import Rollup
    from workers.settings import Settings as WorkerSettings

    async def go() -> int:
        settings = WorkerSettings.from_env({**env, "WORKER_METRICS_PORT": "0"})
        pool = await create_pool(settings.database_url, min_size=0, max_size=4)
        redis = Redis.from_url(settings.redis_url)
        try:
            return await Rollup(settings, pool, redis).drain()
        finally:
            await redis.aclose()
            await pool.close()

    if settle:
        time.sleep(settle)  # the edge flushes every few milliseconds
    return run_sync(go())
