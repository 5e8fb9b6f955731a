"""Fixtures of the fault suite: one private PostgreSQL for the session (a database per test), a
private Redis per test, and a :class:`Stack` of real processes built on them.

Nothing here touches the machine's own PostgreSQL or Redis: the session-wide fixture of
``tests/conftest.py`` that drops the test run's keys there is replaced by a no-op for this folder.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from api.migrate import migrate
from tests.support import run_sync
from tests.system.faults.servers import PrivatePostgres, PrivateRedis, postgres_unavailable, redis_binary
from tests.system.faults.stack import Stack

_numbers = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def _drop_prefix_at_end() -> None:
    """Overrides the root conftest's: this folder leaves the shared test Redis alone."""


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    reason = postgres_unavailable()
    if reason:
        pytest.skip(f"no private PostgreSQL for the fault suite: {reason}")
    root = Path(tempfile.mkdtemp(prefix="le-faults-pg-"))
    server = PrivatePostgres(root)
    try:
        server.init()

        async def template() -> None:
            conn = await asyncpg.connect(server.url())
            try:
                await conn.execute("CREATE DATABASE faults_template")
            finally:
                await conn.close()
            conn = await asyncpg.connect(server.url("faults_template"))
            try:
                await migrate(conn)
            finally:
                await conn.close()

        run_sync(template())
        yield server
    finally:
        server.destroy()


@pytest.fixture
def database_url(private_pg: PrivatePostgres) -> Iterator[str]:
    """A database of this test's own, copied from the migrated template."""
    name = f"faults_{os.getpid()}_{next(_numbers)}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(private_pg.url())
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    run_sync(admin(f'CREATE DATABASE "{name}" TEMPLATE faults_template'))
    yield private_pg.url(name)
    if not private_pg.running():
        private_pg.start()  # a test that failed mid-outage leaves the server for the next one
    run_sync(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., PrivateRedis]]:
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (the fault suite needs a Redis of its own)")
    made: list[PrivateRedis] = []

    def make(*, persistent: bool = True) -> PrivateRedis:
        server = PrivateRedis(tmp_path / f"redis{len(made)}", persistent=persistent)
        server.start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def stack_factory(
    database_url: str, redis_factory: Callable[..., PrivateRedis], private_pg: PrivatePostgres, tmp_path: Path
) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(**options: Any) -> Stack:
        redis = redis_factory(persistent=options.pop("persistent", True))
        stack = Stack.create(database_url, redis, private_pg, tmp_path / f"logs{len(stacks)}", **options)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.close()


FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """What a test measured, for docs/failure-modes.md: written to ``$LINKEDGE_FAULT_FIGURES`` (JSON)."""
    return FIGURES.setdefault(request.node.name, {})


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("LINKEDGE_FAULT_FIGURES")
    if path and FIGURES:
        Path(path).write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")
