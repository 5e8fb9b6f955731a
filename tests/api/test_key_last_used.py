"""api_keys.last_used_at: written at most once a minute per key, by a task the request never awaits."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from api.auth import UseGate, hash_secret, record_use
from api.settings import Settings
from redirector.keys import key_used_gate_key
from tests.api.support import Api
from tests.support import free_port


def _last_used(db: Callable[..., list[asyncpg.Record]], api: Api) -> datetime | None:
    (row,) = db("SELECT last_used_at FROM api_keys WHERE prefix = $1", api.key.prefix)
    value: datetime | None = row["last_used_at"]
    return value


def _wait_for_change(
    db: Callable[..., list[asyncpg.Record]], api: Api, old: datetime | None, timeout: float = 10
) -> datetime:
    deadline = time.monotonic() + timeout
    while (value := _last_used(db, api)) == old or value is None:
        assert time.monotonic() < deadline, "last_used_at was not written"
        time.sleep(0.02)
    return value


def test_last_used_at_is_written_once_a_minute(
    api: Api, db: Callable[..., list[asyncpg.Record]], sync_redis: redis.Redis, settings: Settings
) -> None:
    assert _last_used(db, api) is None  # a new key was never used
    assert api.get("/links").status_code == 200
    first = _wait_for_change(db, api, None)

    assert api.get("/links").status_code == 200  # within the minute: no second write
    (key_id,) = [r["id"] for r in db("SELECT id FROM api_keys WHERE prefix = $1", api.key.prefix)]
    gate = key_used_gate_key(settings.key_prefix, str(key_id))
    assert 0 < sync_redis.ttl(gate) <= 60
    time.sleep(0.3)  # long enough for a write that was scheduled to land
    assert _last_used(db, api) == first

    sync_redis.delete(gate)  # the minute is over
    assert api.get("/links").status_code == 200
    assert _wait_for_change(db, api, first) > first

    # A failed authentication records nothing.
    bad = api.get("/links", headers={"Authorization": f"Bearer lk_{api.key.prefix}.wrong"})
    assert bad.status_code == 401


def test_the_in_process_gate_opens_once_per_minute_per_key() -> None:
    gate = UseGate(every=60, max_keys=2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert gate.open(a, 1000.0) and not gate.open(a, 1059.0) and gate.open(a, 1060.0)
    assert gate.open(b, 1061.0) and not gate.open(b, 1100.0)
    assert gate.open(c, 1200.0)  # full: the keys whose minute is over were forgotten
    assert set(gate.last) == {c}


async def _key(pool: asyncpg.Pool, team: uuid.UUID) -> uuid.UUID:
    key_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO api_keys (id, team_id, prefix, secret_hash, abilities) VALUES ($1, $2, $3, $4, '{}')",
        key_id,
        team,
        key_id.hex[:8],
        hash_secret("x"),
    )
    return key_id


async def test_with_redis_down_each_process_gates_in_memory(
    ctx: tuple[Settings, asyncpg.Pool, AsyncRedis, uuid.UUID],
) -> None:
    settings, pool, _, team = ctx
    key_id = await _key(pool, team)
    down = AsyncRedis(port=free_port(), socket_connect_timeout=0.5)  # nothing listens there
    try:
        task = await record_use(down, pool, settings, key_id)
        assert task is not None
        await task
        assert await pool.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key_id) is not None
        assert await record_use(down, pool, settings, key_id) is None  # the minute's write was done
    finally:
        await down.aclose()


async def test_a_failed_write_is_logged_never_raised(
    ctx: tuple[Settings, asyncpg.Pool, AsyncRedis, uuid.UUID], caplog: pytest.LogCaptureFixture
) -> None:
    settings, pool, client, team = ctx
    key_id = await _key(pool, team)
    broken: Any = _Broken()
    with caplog.at_level(logging.WARNING, logger="linkedge.api.auth"):
        task = await record_use(client, broken, settings, key_id)
        assert task is not None
        await task  # does not raise
    assert f"could not record last_used_at of API key {key_id}" in caplog.text


class _Broken:
    async def execute(self, *args: object, **kwargs: object) -> str:
        raise OSError("connection refused")
