"""``linkedge up`` (the whole local stack) and ``linkedge services``: the only commands that find or start servers.

``up`` finds or starts PostgreSQL and Redis, migrates, makes sure the demo team exists, creates a
fresh key, then runs the API, the edge and a worker in the foreground until Ctrl-C or SIGTERM,
when it stops them, and the embedded servers it started, in that order.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg

from api.auth import ABILITIES
from api.errors import Conflict
from api.migrate import migrate
from api.settings import Settings
from api.teams import create_key, create_team, get_team_by_name
from cli.common import add_command
from cli.serve import process_env, project_root, serve_argv
from devstack.services import Services, embedded_status, ensure_services, stop_embedded
from devstack.supervise import ProcessGroup, wait_healthy


def data_dir(env: Mapping[str, str]) -> Path:
    """Where embedded servers keep their data: LINKEDGE_DATA_DIR, else ``.data/dev`` of the project."""
    return Path(env.get("LINKEDGE_DATA_DIR") or project_root() / ".data" / "dev")


def stack_env(env: Mapping[str, str], services: Services, edge_port: int = 8080) -> dict[str, str]:
    """The environment every process of the stack gets: the services found, plus local defaults."""
    return process_env({**env, "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}, edge_port)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def prepare(settings: Settings, team_name: str, plan: str) -> tuple[list[str], str]:
    """Migrate, make sure the demo team exists, and create a fresh key with every ability."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        applied = await migrate(conn)
        team = await get_team_by_name(conn, team_name)
        if team is None:
            try:
                team = await create_team(conn, team_name, plan)
            except Conflict:  # another `up` created it a moment ago
                team = await get_team_by_name(conn, team_name)
        assert team is not None
        key = await create_key(conn, team.id, list(ABILITIES), "linkedge up")
    finally:
        await conn.close()
    return applied, key


def cmd_up(args: argparse.Namespace, env: dict[str, str]) -> int:
    api_port = args.api_port or int(env.get("API_PORT", "8000"))
    edge_port = args.edge_port or int(env.get("EDGE_PORT", "8080"))
    for name, port in (("API_PORT", api_port), ("EDGE_PORT", edge_port)):
        if not _port_free(port):
            print(f"linkedge: error: port {port} is in use (is linkedge already up?); set {name}", file=sys.stderr)
            return 1
    services = ensure_services(data_dir(env), env, database="linkedge")
    supervisor = ProcessGroup()
    stop = supervisor.stop_on_signals()
    try:
        child_env = stack_env(env, services, edge_port)
        child_env.setdefault("VISITOR_SALT", _visitor_salt(data_dir(env)))
        settings = Settings.from_env(child_env)
        applied, key = asyncio.run(prepare(settings, args.team, args.plan))
        print(f"database: {'applied ' + ', '.join(applied) if applied else 'up to date'}", flush=True)
        supervisor.start("api", serve_argv("api", host=args.host, port=api_port, workers=1), child_env)
        edge = serve_argv("edge", host=args.host, port=edge_port, workers=args.edge_workers)
        supervisor.start("edge", edge, child_env)
        supervisor.start("worker", serve_argv("worker", host="", port=None, workers=None), child_env)
        for name, port in (("api", api_port), ("edge", edge_port)):
            if not wait_healthy(f"http://127.0.0.1:{port}/healthz", supervisor, stop):
                if not stop.is_set():
                    print(f"linkedge: error: the {name} did not become healthy", file=sys.stderr)
                return 1
        print(_banner(services, child_env, args.team, args.plan, key, api_port, edge_port), flush=True)
        failed = supervisor.run_until(stop)
        return 0 if failed is None else 1
    finally:
        supervisor.stop()
        services.stop()


def _visitor_salt(folder: Path) -> str:
    # Stable across restarts, so a visitor hashes the same all day; secret to this machine.
    path = folder / "visitor_salt"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(16))
    return path.read_text().strip()


PLACE_SETTINGS = (("region/city", "GEOIP_CITY_DB"), ("ASN", "GEOIP_ASN_DB"))


def _banner(
    services: Services, env: Mapping[str, str], team: str, plan: str, key: str, api_port: int, edge_port: int
) -> str:
    slug = f"hello-{secrets.token_hex(2)}"
    public = env["PUBLIC_BASE_URL"]
    geoip = env.get("GEOIP_DB") or "none (countries come from COUNTRY_HEADER only)"
    places = ", ".join(f"{what} {'yes' if env.get(name) else 'no'}" for what, name in PLACE_SETTINGS)
    return f"""
linkedge is up
  API         http://localhost:{api_port}/api/v1   (docs: /api/v1/docs)
  edge        {public}
  worker      running
  PostgreSQL  {services.database_url}  ({services.database_source})
  Redis       {services.redis_url}  ({services.redis_source})
  GeoIP       {geoip}  ({places})

API key for team {team!r} (plan {plan}, every ability); shown once:
  {key}

Create a short link:
  curl -sS -X POST http://localhost:{api_port}/api/v1/links \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"url": "https://example.com/", "custom_slug": "{slug}"}}'
Follow it:
  curl -i {public}/{slug}

Ctrl-C stops everything.
"""


def cmd_services(args: argparse.Namespace, env: dict[str, str]) -> int:
    folder = Path(args.data_dir) if args.data_dir else data_dir(env)
    if args.action == "stop":
        stopped = stop_embedded(folder)
        print("stopped " + ", ".join(stopped) if stopped else f"no embedded servers running under {folder}")
        return 0
    if args.action == "status":
        for kind, server in embedded_status(folder).items():
            print(f"{kind}: {f'{server.url} (pid {server.pid})' if server else 'not running'}")
        return 0
    services = ensure_services(folder, env, allow_local=False if args.embedded else None, database="linkedge")
    services.started.clear()  # leave them running: `linkedge services stop` stops them
    print(f"export DATABASE_URL={services.database_url}  # {services.database_source}")
    print(f"export REDIS_URL={services.redis_url}  # {services.redis_source}")
    return 0


def add_commands(commands: Any) -> None:
    p = add_command(commands, "up", None, "run the whole stack locally with a demo team and key", cmd_up)
    p.add_argument("--api-port", type=int, help="default: $API_PORT or 8000")
    p.add_argument("--edge-port", type=int, help="default: $EDGE_PORT or 8080")
    p.add_argument("--edge-workers", type=int, default=2)
    p.add_argument("--host", default="127.0.0.1", help="address the API and edge listen on (default: 127.0.0.1)")
    p.add_argument("--team", default="demo", help="demo team name (default: demo)")
    p.add_argument("--plan", default="pro", help="plan of the demo team when it is created (default: pro)")

    p = add_command(commands, "services", None, "find or start PostgreSQL and Redis for local runs", cmd_services)
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--embedded", action="store_true", help="start: ignore services on the standard ports")
    p.add_argument("--data-dir", help="default: $LINKEDGE_DATA_DIR or .data/dev")
