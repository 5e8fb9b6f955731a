"""The container entry point, run here as the image runs it: roles, waiting, migrations, health.

Each serving role is started through ``deploy/entrypoint.py`` against the test PostgreSQL and
Redis, and the Dockerfile's own HEALTHCHECK command is run against it, so the health plumbing
is checked for real without a Docker engine.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.deploy.support import DEPLOY, ROOT, entrypoint, healthcheck_command
from tests.support import free_port

ENTRYPOINT = DEPLOY / "entrypoint.py"


def base_env() -> dict[str, str]:
    """This process's environment without any linkedge setting, so each test states its own."""
    drop = ("DATABASE_URL", "REDIS_URL", "KEY_PREFIX", "EDGE_", "API_", "WORKER_", "LINKEDGE_", "TEST_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def run_entrypoint(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ENTRYPOINT), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


# ---- pure functions ------------------------------------------------------------------------


def test_plans_use_the_serve_command_lines_on_all_interfaces() -> None:
    ep = entrypoint()
    edge = ep.plan("edge", {"EDGE_PORT": "9090", "EDGE_WORKERS": "3"})
    assert edge.argv[1:4] == ["-m", "redirector.serve", "redirector.app:main"]
    assert edge.argv[edge.argv.index("--workers") + 1] == "3"
    assert edge.argv[edge.argv.index("--host") + 1] == "0.0.0.0"
    assert edge.health_url == "http://127.0.0.1:9090/healthz"
    assert edge.env == {"EDGE_METRICS_HOST": "0.0.0.0"}  # its metrics listener too, unless set

    api = ep.plan("api", {"API_WORKERS": "2", "LISTEN_HOST": "::"})
    assert api.argv[1:4] == ["-m", "uvicorn", "api.app:main"]
    assert api.argv[api.argv.index("--port") + 1] == "8000"
    assert api.argv[api.argv.index("--workers") + 1] == "2"
    assert api.argv[api.argv.index("--host") + 1] == "::"
    assert api.health_url == "http://127.0.0.1:8000/healthz"

    worker = ep.plan("worker", {})
    assert worker.argv[1:] == ["-m", "workers"]
    assert worker.health_url == "http://127.0.0.1:9100/healthz"


def test_edge_workers_default_to_the_container_cpu_limit(tmp_path: Path) -> None:
    ep = entrypoint()
    assert ep.plan("edge", {}, cpus=lambda: 5).argv[-1] == "5"
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert ep.cgroup_cpus(tmp_path) == 1.5
    affinity = len(os.sched_getaffinity(0))
    assert ep.default_edge_workers(tmp_path) == min(2, affinity)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert ep.cgroup_cpus(tmp_path) is None
    assert ep.default_edge_workers(tmp_path) == affinity
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert ep.cgroup_cpus(v1) == 1.0
    assert ep.default_edge_workers(v1) == 1
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert ep.cgroup_cpus(v1) is None


def test_bad_settings_are_one_line_errors() -> None:
    ep = entrypoint()
    with pytest.raises(ep.EntrypointError, match="EDGE_PORT must be an integer"):
        ep.plan("edge", {"EDGE_PORT": "http"})
    with pytest.raises(ep.EntrypointError, match="without a health endpoint"):
        ep.plan("worker", {"WORKER_METRICS_PORT": "0"})
    with pytest.raises(ep.EntrypointError, match="api needs DATABASE_URL and REDIS_URL"):
        ep.check_env("api", {"DATABASE_URL": " "})
    ep.check_env("edge", {"REDIS_URL": "redis://r:6379/0"})  # the edge never needs the database
    assert ep._redacted("postgresql://u:secret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert ep._redacted("redis://r:6379/0") == "redis://r:6379/0"
    cluster = "redis+cluster://app:s3cret@10.0.0.1:6379,10.0.0.2:6379"
    assert ep._redacted(cluster) == "redis+cluster://app:***@10.0.0.1:6379,10.0.0.2:6379"
    assert ep._redacted("redis://:pw@r:6379/0") == "redis://:***@r:6379/0"


# ---- the script, as a process ----------------------------------------------------------------


def test_missing_url_fails_fast_instead_of_finding_another_server() -> None:
    result = run_entrypoint(["api"], {**base_env(), "REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert result.returncode == 1
    assert result.stderr.strip() == "linkedge: error: api needs DATABASE_URL (see deploy/README.md)"


def test_unreachable_service_times_out_without_leaking_the_password() -> None:
    dead = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = run_entrypoint(["edge"], {**base_env(), "REDIS_URL": dead, "WAIT_TIMEOUT": "1"})
    assert result.returncode == 1
    assert "not answering after 1 s: REDIS_URL=redis://:***@127.0.0.1:" in result.stderr
    assert "hunter2" not in result.stderr


def test_other_commands_run_as_given() -> None:
    result = run_entrypoint(["python", "-c", "print('hello')"], base_env())
    assert (result.returncode, result.stdout) == (0, "hello\n")
    result = run_entrypoint(["no-such-command"], base_env())
    assert result.returncode == 127 and "roles: api, edge, worker, migrate" in result.stderr


def test_migrate_and_wait_migrations_against_the_database(env: dict[str, str]) -> None:
    environment = {**base_env(), **env}
    result = run_entrypoint(["migrate"], environment)
    assert (result.returncode, result.stdout) == (0, "database is up to date\n"), result.stderr
    result = run_entrypoint(["wait-migrations"], environment)
    assert (result.returncode, result.stdout) == (0, "database schema is current\n"), result.stderr


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    """A new database on the test server, without any migration applied."""
    name = f"linkedge_deploy_{secrets.token_hex(4)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}"'))


def test_wait_migrations_fails_on_a_database_without_the_schema_and_migrate_fixes_it(empty_database: str) -> None:
    environment = {**base_env(), "DATABASE_URL": empty_database, "MIGRATIONS_TIMEOUT": "0"}
    result = run_entrypoint(["wait-migrations"], environment)
    assert result.returncode == 1
    assert "migrations still pending: 001_core" in result.stderr
    result = run_entrypoint(["migrate"], environment)
    assert result.returncode == 0 and result.stdout.startswith("applied 001_core, "), result.stderr
    assert run_entrypoint(["wait-migrations"], environment).returncode == 0


@pytest.fixture
def serving(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    environment = {
        **base_env(),
        **env,
        "EDGE_PORT": str(free_port()),
        "EDGE_METRICS_PORT": str(free_port()),
        "API_PORT": str(free_port()),
        "WORKER_METRICS_PORT": str(free_port()),
        "EDGE_WORKERS": "1",
        "LISTEN_HOST": "127.0.0.1",
        "LINKEDGE_HEALTH_FILE": str(tmp_path / "health"),
        "LINKEDGE_DATA_DIR": str(tmp_path / "data"),
    }
    yield environment, tmp_path


def healthcheck(environment: dict[str, str]) -> int:
    """Run the Dockerfile's HEALTHCHECK command as Docker would, with the container's environment."""
    command = healthcheck_command()
    command[0] = sys.executable  # `python` is the venv's on the image's PATH
    return subprocess.run(command, env=environment, capture_output=True, timeout=10).returncode


@pytest.mark.parametrize("role", ["edge", "api", "worker"])
def test_serving_role_starts_and_passes_the_image_healthcheck(role: str, serving: tuple[dict[str, str], Path]) -> None:
    environment, tmp_path = serving
    if role == "edge":
        environment.pop("DATABASE_URL")  # the edge runs without it
    log = (tmp_path / f"{role}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), role], env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        assert healthcheck(environment) != 0  # nothing is listening yet, or no health file
        deadline = time.monotonic() + 30
        while healthcheck(environment) != 0:
            assert proc.poll() is None, (tmp_path / f"{role}.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / f"{role}.log").read_text()
            time.sleep(0.2)
        url = (tmp_path / "health").read_text().strip()
        port = {"edge": "EDGE_PORT", "api": "API_PORT", "worker": "WORKER_METRICS_PORT"}[role]
        assert url.startswith(f"http://127.0.0.1:{environment[port]}/")
        assert url.endswith("/healthz")
        if role == "worker":
            with urllib.request.urlopen(url, timeout=5) as response:  # a healthy worker says so
                assert response.read().strip() == b"ok"
        else:
            ready = url.replace("/healthz", "/readyz")
            with urllib.request.urlopen(ready, timeout=5) as response:
                assert response.status == 200
        if role == "edge":
            metrics = f"http://127.0.0.1:{environment['EDGE_METRICS_PORT']}/metrics"
            with urllib.request.urlopen(metrics, timeout=5) as response:
                assert b"linkedge_edge_requests_total" in response.read()
            with pytest.raises(urllib.error.HTTPError) as public:
                urllib.request.urlopen(url.replace("/healthz", "/metrics"), timeout=5)
            public.value.close()
            assert public.value.code == 404
    finally:
        proc.send_signal(signal.SIGTERM)  # the entry point exec'd: this is the server itself
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode in (0, -signal.SIGTERM), (tmp_path / f"{role}.log").read_text()
