"""Shared helpers of the deployment tests: paths, YAML loading, the entry point as a module."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
VENV_BIN = Path(sys.executable).parent


@cache
def entrypoint() -> ModuleType:
    """deploy/entrypoint.py, imported by path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("linkedge_entrypoint", DEPLOY / "entrypoint.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in k8s_files() for doc in load_yaml_docs(path)]


def dockerfile_instructions(path: Path = DEPLOY / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
    return out


def healthcheck_command() -> list[str]:
    """The exec-form command of the image's HEALTHCHECK."""
    (args,) = [rest for keyword, rest in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    _, _, exec_form = args.partition(" CMD ")
    command = json.loads(exec_form)
    assert isinstance(command, list)
    return [str(part) for part in command]


def tool(name: str) -> str | None:
    """A command from PATH or from this interpreter's venv (pip-installed binaries live there)."""
    return shutil.which(name) or shutil.which(name, path=str(VENV_BIN))
