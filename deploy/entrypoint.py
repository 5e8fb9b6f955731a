"""The container's entry point: ``api | edge | worker | migrate | wait-migrations``, or any command.

    docker run IMAGE edge          # the redirect edge on $EDGE_PORT (8080), one process per CPU,
                                   # metrics on $EDGE_METRICS_PORT (9101) + the process's index
    docker run IMAGE api           # the management API on $API_PORT (8000)
    docker run IMAGE worker        # the roll-up and cache-heal worker (/metrics, /healthz on $WORKER_METRICS_PORT)
    docker run IMAGE migrate       # apply pending migrations, then exit
    docker run IMAGE wait-migrations   # exit 0 once every migration of this image is applied
    docker run IMAGE linkedge key create --team acme --abilities all   # anything else runs as given

The serving roles run exactly the command line ``linkedge serve ROLE`` runs
(:func:`cli.serve.serve_argv`). Here the URLs are required (a container has no local default to
fall back on), waited for (``WAIT_TIMEOUT`` seconds, default 60), and the container exits
non-zero when they never answer, so the orchestrator restarts it.
The edge is never given or asked for DATABASE_URL: it does not talk to PostgreSQL.

Before it starts a server it writes the URL of its health endpoint to ``LINKEDGE_HEALTH_FILE``
(default ``/tmp/linkedge.health``), which the image's ``HEALTHCHECK`` reads.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from api.migrate import migrate, migration_files
from cli.serve import serve_argv
from kit.reach import answers
from redirector.redis_url import redact as _redacted

NEEDS: dict[str, tuple[str, ...]] = {
    "api": ("DATABASE_URL", "REDIS_URL"),
    "edge": ("REDIS_URL",),
    "worker": ("DATABASE_URL", "REDIS_URL"),
    "migrate": ("DATABASE_URL",),
    "wait-migrations": ("DATABASE_URL",),
}
HEALTH_FILE = "/tmp/linkedge.health"


class EntrypointError(Exception):
    """A configuration or start-up failure: one line on stderr, exit status 1."""


@dataclass(frozen=True)
class Plan:
    """What a serving role runs, where its health endpoint answers, and environment defaults."""

    argv: list[str]
    health_url: str
    env: dict[str, str] = field(default_factory=dict)  # set for the role unless the environment has it


def cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The container's CPU limit (cgroup v2 ``cpu.max``, else v1 CFS quota), None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass  # not cgroup v2
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def default_edge_workers(root: Path = Path("/sys/fs/cgroup")) -> int:
    """One edge process per CPU the container may use: the CPU limit rounded up, capped by affinity.

    ``os.cpu_count()`` (what ``linkedge serve edge`` uses) counts the node's CPUs, not the
    container's: a pod limited to 2 CPUs on a 64-core node would start 64 processes.
    """
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpus(root)
    if limit is not None:
        available = min(available, math.ceil(limit))
    return max(1, available)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise EntrypointError(f"{name} must be an integer, not {value!r}") from None
    if number < 0:
        raise EntrypointError(f"{name} must not be negative")
    return number


def plan(role: str, env: Mapping[str, str], cpus: Callable[[], int] = default_edge_workers) -> Plan:
    """The command line and health URL of a serving role, from the environment."""
    host = env.get("LISTEN_HOST", "0.0.0.0")
    if role == "api":
        port = _int(env, "API_PORT", 8000)
        workers = _int(env, "API_WORKERS", 1) or 1
        argv = serve_argv("api", host=host, port=port, workers=None)
        if workers > 1:
            argv += ["--workers", str(workers)]
        return Plan(argv, f"http://127.0.0.1:{port}/healthz")
    if role == "edge":
        port = _int(env, "EDGE_PORT", 8080)
        workers = _int(env, "EDGE_WORKERS", 0) or cpus()
        argv = serve_argv("edge", host=host, port=port, workers=workers)
        # The metrics listener is the edge's own (redirector.ops): it listens where the server does.
        return Plan(argv, f"http://127.0.0.1:{port}/healthz", {"EDGE_METRICS_HOST": host})
    if role == "worker":
        port = _int(env, "WORKER_METRICS_PORT", 9100)
        if port == 0:
            raise EntrypointError("WORKER_METRICS_PORT=0 leaves the worker without a health endpoint")
        # /healthz beside /metrics: 200 "ok" or "degraded: ..." (a dependency is down; the worker
        # retries by itself), 503 "wedged: ..." once a loop is WORKER_STALL_AFTER overdue.
        return Plan(serve_argv("worker", host=host, port=None, workers=None), f"http://127.0.0.1:{port}/healthz")
    raise EntrypointError(f"unknown role {role!r}")


def check_env(role: str, env: Mapping[str, str]) -> None:
    """Fail when a URL the role needs is unset: never guess where production data lives."""
    missing = [name for name in NEEDS[role] if not env.get(name, "").strip()]
    if missing:
        raise EntrypointError(f"{role} needs {' and '.join(missing)} (see deploy/README.md)")


def wait_for(role: str, env: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait until every URL the role needs accepts TCP connections, up to WAIT_TIMEOUT seconds."""
    deadline = time.monotonic() + _int(env, "WAIT_TIMEOUT", 60)
    pending = list(NEEDS[role])
    while True:
        pending = [name for name in pending if not answers(env[name], timeout=2.0)]
        if not pending:
            return
        if time.monotonic() >= deadline:
            where = ", ".join(f"{name}={_redacted(env[name])}" for name in pending)
            raise EntrypointError(f"not answering after {env.get('WAIT_TIMEOUT', '60')} s: {where}")
        print(f"linkedge: waiting for {', '.join(pending)} ...", file=sys.stderr, flush=True)
        sleep(1.0)


async def _migrate(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def _pending(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")} if exists else set()
    finally:
        await conn.close()
    return [version for version, _ in migration_files() if version not in done]


def run_migrate(env: Mapping[str, str]) -> int:
    applied = asyncio.run(_migrate(env["DATABASE_URL"]))
    print(f"applied {', '.join(applied)}" if applied else "database is up to date", flush=True)
    return 0


def run_wait_migrations(env: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep) -> int:
    """Exit 0 once the database has every migration this image ships (an init container's job)."""
    deadline = time.monotonic() + _int(env, "MIGRATIONS_TIMEOUT", 600)
    while True:
        try:
            pending = asyncio.run(_pending(env["DATABASE_URL"]))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:  # a restarting database
            pending = [f"(database: {e})"]
        if not pending:
            print("database schema is current", flush=True)
            return 0
        if time.monotonic() >= deadline:
            raise EntrypointError(f"migrations still pending: {', '.join(pending)} (run the migrate job)")
        print(f"linkedge: waiting for migrations {', '.join(pending)} ...", file=sys.stderr, flush=True)
        sleep(2.0)


def write_health_file(env: Mapping[str, str], url: str) -> None:
    path = Path(env.get("LINKEDGE_HEALTH_FILE", HEALTH_FILE))
    try:
        path.write_text(url + "\n")
    except OSError as e:  # a read-only /tmp: only the image HEALTHCHECK needs the file
        print(f"linkedge: warning: cannot write {path}: {e}", file=sys.stderr)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the role named by the first argument; returns only on failure or for one-shot roles."""
    args = list(sys.argv[1:] if argv is None else argv) or ["edge"]
    full_env = dict(os.environ if env is None else env)
    role, extra = args[0], args[1:]
    if role not in NEEDS:
        try:
            os.execvpe(role, args, full_env)  # `docker run IMAGE linkedge key create ...`, `sh`, ...
        except OSError as e:
            print(f"linkedge: error: cannot run {role!r}: {e}; roles: {', '.join(NEEDS)}", file=sys.stderr)
            return 127
    try:
        check_env(role, full_env)
        wait_for(role, full_env)
        if role == "migrate":
            return run_migrate(full_env)
        if role == "wait-migrations":
            return run_wait_migrations(full_env)
        what = plan(role, full_env)
    except EntrypointError as e:
        print(f"linkedge: error: {e}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        print(f"linkedge: error: database: {e}", file=sys.stderr)
        return 1
    write_health_file(full_env, what.health_url)
    sys.stdout.flush()
    os.execve(what.argv[0], what.argv + extra, {**what.env, **full_env})


if __name__ == "__main__":
    sys.exit(main())
