"""``linkedge domain add|verify|list``: the operator's side of branded domains.

``add --verified`` skips the DNS proof (the operator vouches for the hostname) and the plan's
limit, and may assign the platform's own hostnames; without it the command prints the TXT record
the team must create, as the API does.
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from api.domains import queries, service
from api.domains.schemas import DomainCreate
from api.links.schemas import error_details, sentence
from api.plans import get_plan
from api.serving.sync import sync_domain
from api.settings import Settings
from api.teams import get_team_by_name
from cli.common import CliError, add_command, pool_and_redis
from redirector.hosts import parse_hostname


async def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    try:
        body = DomainCreate.model_validate({"hostname": args.hostname, "kind": args.kind})
    except ValidationError as e:
        raise CliError(sentence(error_details(e))) from None
    async with pool_and_redis(settings) as (pool, redis):
        async with pool.acquire() as conn:
            team = await get_team_by_name(conn, args.team)
        if team is None:
            raise CliError(f"no team named {args.team!r}")
        ctx = service.Ctx(pool, redis, settings)
        row = await service.create_domain(
            ctx, team.id, get_plan(team.plan), body, verified=args.verified, operator=True
        )
    state = "verified" if row["verified_at"] is not None else "not verified yet"
    print(f"added {row['hostname']} to team {team.name} ({row['kind']}, {state}; id {row['id']})")
    if row["verified_at"] is None:
        print(f"to verify: TXT _linkedge-challenge.{row['hostname']} = {row['challenge_token']}")
    return 0


async def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Mark a team's domain verified without DNS (the operator has checked it another way)."""
    hostname = _hostname(args.hostname)
    async with pool_and_redis(settings) as (pool, redis):
        async with pool.acquire() as conn, conn.transaction():
            team = await get_team_by_name(conn, args.team)
            if team is None:
                raise CliError(f"no team named {args.team!r}")
            row = await queries.get_by_hostname(conn, team.id, hostname)
            if row is None:
                raise CliError(f"team {team.name} has no domain {hostname}")
            await queries.lock_hostname(conn, hostname)
            owner = await queries.owner_of(conn, hostname)
            if owner is not None and owner != team.id:
                raise CliError(f"{hostname} is already verified by another team")
            if row["verified_at"] is None:
                await queries.mark_verified(conn, row["id"])
        await sync_domain(pool, redis, settings.serving, hostname)
    print(f"{hostname} is verified for team {team.name}")
    return 0


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async with pool_and_redis(settings) as (pool, _redis):
        rows = await pool.fetch(
            "SELECT d.hostname, d.kind, d.verified_at, t.name AS team FROM domains d JOIN teams t ON t.id = d.team_id "
            "WHERE d.deleted_at IS NULL AND ($1::text IS NULL OR t.name = $1) ORDER BY d.hostname, t.name",
            args.team,
        )
    for row in rows:
        state = "verified" if row["verified_at"] is not None else "unverified"
        print(f"{row['hostname']}\t{row['team']}\t{row['kind']}\t{state}")
    return 0


def _hostname(value: str) -> str:
    try:
        return parse_hostname(value)
    except ValueError as e:
        raise CliError(f"hostname {e}") from None


def add_commands(commands: Any) -> None:
    command = add_command
    domain = commands.add_parser("domain", help="teams' branded domains").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = command(domain, "add", cmd_add, "add a domain to a team (--verified: skip the DNS proof)")
    p.add_argument("hostname")
    p.add_argument("--team", required=True)
    p.add_argument("--kind", choices=("links", "bio", "both"), default="links")
    p.add_argument("--verified", action="store_true", help="mark it verified now (the operator vouches for it)")
    p = command(domain, "verify", cmd_verify, "mark a team's domain verified without the DNS proof")
    p.add_argument("hostname")
    p.add_argument("--team", required=True)
    p = command(domain, "list", cmd_list, "list domains (of one team with --team)")
    p.add_argument("--team")
