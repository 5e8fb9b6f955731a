"""The admin CLI: ``linkedge migrate | team | key | cache | analytics | domain | links | serve | up | services``.

Every admin command uses ``DATABASE_URL`` / ``REDIS_URL`` exactly as given (else the defaults on
127.0.0.1) and never looks for another server: one that does not answer is one line naming its
URL. Only ``linkedge up`` and ``linkedge services`` find or start servers (:mod:`devstack`).
Bad input is one line on stderr and exit status 1 (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence

import asyncpg
from redis.exceptions import RedisError

from api.auth import ABILITIES, parse_abilities
from api.errors import ApiError
from api.migrate import migrate
from api.plans import PLANS
from api.serving.sync import rebuild_all
from api.settings import Settings
from api.teams import create_key, create_team, get_team_by_name, revoke_key, set_plan
from cli import analytics, domains, links, serve, stack
from cli.common import CliError, add_command, connect, pool_and_redis, progress_bar
from devstack.services import ServiceError


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``linkedge`` console script; returns the exit status."""
    env = dict(os.environ if env is None else env)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        if args.handler is not None:
            return int(args.handler(args, env))
        settings = Settings.from_env(env)
        return int(asyncio.run(args.command(args, settings)))
    except KeyboardInterrupt:
        return 130
    except (CliError, ValueError, ApiError) as e:
        return fail(str(e))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        return fail(f"database: {e}")
    except RedisError as e:
        return fail(f"redis: {e}")
    except ServiceError as e:
        return fail(str(e))


def fail(message: str) -> int:
    print(f"linkedge: error: {message}", file=sys.stderr)
    return 1


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async with connect(settings) as conn:
        applied = await migrate(conn)
    print(f"applied {', '.join(applied)}" if applied else "database is up to date")
    return 0


def _check_plan(plan: str) -> str:
    if plan not in PLANS:
        raise CliError(f"unknown plan {plan!r}; choose one of {', '.join(PLANS)}")
    return plan


async def cmd_team_create(args: argparse.Namespace, settings: Settings) -> int:
    plan = _check_plan(args.plan)
    async with connect(settings) as conn:
        team = await create_team(conn, args.name, plan)
    print(f"created team {team.name} (plan {team.plan}, id {team.id})")
    return 0


async def cmd_team_plan(args: argparse.Namespace, settings: Settings) -> int:
    plan = _check_plan(args.plan)
    async with connect(settings) as conn:
        team = await set_plan(conn, args.name, plan)
    if team is None:
        raise CliError(f"no team named {args.name!r}")
    print(f"team {team.name} is now on plan {team.plan}")
    return 0


async def cmd_key_create(args: argparse.Namespace, settings: Settings) -> int:
    abilities = parse_abilities(args.abilities)
    async with connect(settings) as conn:
        team = await get_team_by_name(conn, args.team)
        if team is None:
            raise CliError(f"no team named {args.team!r}")
        key = await create_key(conn, team.id, abilities, args.name)
    print(f"new key for team {team.name} ({', '.join(abilities)}); it is shown only this once:", file=sys.stderr)
    print(key)
    return 0


async def cmd_key_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async with connect(settings) as conn:
        revoked = await revoke_key(conn, args.prefix)
    if not revoked:
        raise CliError(f"no active key with prefix {args.prefix!r}")
    print(f"revoked key {args.prefix}")
    return 0


async def cmd_cache_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    async with pool_and_redis(settings) as (pool, redis):
        with progress_bar("rebuilding cache") as progress:
            written = await rebuild_all(pool, redis, settings.serving, progress=progress)
    print(f"wrote {written} cache records")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linkedge", description="linkedge admin and process launcher")
    commands = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    command = add_command
    command(commands, "migrate", cmd_migrate, "apply pending database migrations (idempotent)")

    team = commands.add_parser("team", help="create teams and set their plans").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = command(team, "create", cmd_team_create, "create a team")
    p.add_argument("name")
    p.add_argument("--plan", default="free", help=f"one of {', '.join(PLANS)} (default: free)")
    p = command(team, "plan", cmd_team_plan, "move a team to another plan")
    p.add_argument("name")
    p.add_argument("plan", help=", ".join(PLANS))

    key = commands.add_parser("key", help="create and revoke API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = command(key, "create", cmd_key_create, "create an API key and print it (shown once)")
    p.add_argument("--team", required=True)
    p.add_argument("--abilities", required=True, help=f"comma-separated, or 'all': {', '.join(ABILITIES)}")
    p.add_argument("--name", default="", help="a label for the key")
    p = command(key, "revoke", cmd_key_revoke, "revoke a key by its prefix (lk_<prefix> or the full key)")
    p.add_argument("prefix")

    cache = commands.add_parser("cache", help="the Redis serving cache").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    command(cache, "rebuild", cmd_cache_rebuild, "rewrite every cache record from PostgreSQL")

    analytics.add_commands(commands)
    domains.add_commands(commands)
    links.add_commands(commands)
    serve.add_commands(commands)
    stack.add_commands(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
