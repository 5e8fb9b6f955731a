"""Real PostgreSQL and Redis for every test run: no fakes.

TEST_DATABASE_URL / TEST_REDIS_URL when set, else the local services on their standard
ports, else embedded servers (see devstack.services). A run creates its own database and its
own Redis key prefix, wipes both before each test, and drops them when it ends.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis

from api.migrate import migrate
from devstack.services import Services, ensure_services

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = secrets.token_hex(4)


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    found = ensure_services(ROOT / ".data" / "test", os.environ, prefix="TEST_")
    try:
        yield found
    finally:
        found.stop()  # only the embedded servers this run started


@pytest.fixture(scope="session")
def database_url(services: Services) -> Iterator[str]:
    name = f"linkedge_test_{RUN_ID}"

    async def create() -> None:
        admin = await asyncpg.connect(services.database_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(_with_db(services.database_url, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(services.database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())
    try:
        yield _with_db(services.database_url, name)
    finally:
        asyncio.run(drop())


@pytest.fixture(scope="session")
def key_prefix() -> str:
    return f"t{RUN_ID}:"


@pytest.fixture(scope="session")
def redis_url(services: Services) -> str:
    return services.redis_url


def _drop_keys(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        # arq's own keys (arq:job:<id>, arq:result:<id>, ...) carry the prefix inside the job id.
        batch = [
            *client.scan_iter(match=f"{prefix}*", count=1000),
            *client.scan_iter(match=f"arq:*:{prefix}*", count=1000),
        ]
        for i in range(0, len(batch), 500):
            client.unlink(*batch[i : i + 500])
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def _drop_prefix_at_end(redis_url: str, key_prefix: str) -> Iterator[None]:
    yield
    _drop_keys(redis_url, key_prefix)


@pytest.fixture
def clean(database_url: str, redis_url: str, key_prefix: str) -> None:
    """A clean slate: every table truncated and every key of this run deleted."""

    async def truncate() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
            )
            if tables:
                names = ", ".join(f'"{t["tablename"]}"' for t in tables)
                await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    asyncio.run(truncate())
    _drop_keys(redis_url, key_prefix)


@pytest.fixture
def env(database_url: str, redis_url: str, key_prefix: str, clean: None) -> dict[str, str]:
    """Environment for any linkedge process under test, on a clean slate."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "KEY_PREFIX": key_prefix,
        "PUBLIC_BASE_URL": "http://sho.rt",
        "BIO_BASE_URL": "http://bio.test",
        "VISITOR_SALT": "test-salt",
        # No edge metrics listener unless a test asks for one on a port of its own: edges of tests
        # running side by side would all want the default one.
        "EDGE_METRICS_PORT": "0",
    }
