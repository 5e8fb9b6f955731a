"""``linkedge analytics export``: a team's analytics as CSV, the rows ``GET /api/v1/analytics?format=csv`` has.

The same query runs on the database directly (like every admin command), with the team's plan
clamping the window; ``--limit`` may go past the API's 1,000 (an export of every link). The
progress bar goes to stderr, and only when stderr is a terminal or ``--progress`` asks for it.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from api.analytics import service
from api.analytics.export import csv_chunks
from api.plans import get_plan
from api.settings import Settings
from api.stats.window import WindowQuery
from cli.common import CliError, add_command, pool_only, progress_bar

EXPORT_LIMIT = 1_000_000


def _progress(args: argparse.Namespace, description: str) -> AbstractContextManager[Callable[[int, int], None]]:
    if args.progress or sys.stderr.isatty():
        return progress_bar(description)
    return nullcontext(lambda done, total: None)


def _counted(rows: list[dict[str, Any]], progress: Callable[[int, int], None]) -> Iterator[dict[str, Any]]:
    for n, row in enumerate(rows, 1):
        yield row
        if n % 500 == 0 or n == len(rows):
            progress(n, len(rows))


async def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    req = service.Request(
        group_by=args.group_by,
        interval=args.interval,
        window=WindowQuery(args.start, args.end, args.tz),
        link_id=args.link_id,
        labels=tuple(args.label or ()),
        domain=args.domain,
        country=args.country,
        source=args.source,
        limit=args.limit,
    )
    async with pool_only(settings) as pool, pool.acquire() as conn:
        team = await conn.fetchrow("SELECT id, plan FROM teams WHERE name = $1", args.team)
        if team is None:
            raise CliError(f"no team named {args.team!r}")
        with _progress(args, "querying") as progress:
            progress(0, 0)
            answer = await service.analytics(
                conn, settings, uuid.UUID(str(team["id"])), get_plan(team["plan"]), req, max_limit=EXPORT_LIMIT
            )
    to_file = args.output not in (None, "-")
    out = open(args.output, "w", encoding="utf-8", newline="") if to_file else sys.stdout
    try:
        with _progress(args, f"writing {len(answer.rows)} rows") as progress:
            for chunk in csv_chunks(answer.columns, _counted(answer.rows, progress)):
                out.write(chunk)
            progress(len(answer.rows), len(answer.rows))
    finally:
        if to_file:
            out.close()
    more = f" (more values past --limit {args.limit})" if answer.more else ""
    where = f" to {args.output}" if to_file else ""
    print(f"exported {len(answer.rows)} rows{where}{more}", file=sys.stderr)
    return 0


def add_commands(commands: Any) -> None:
    analytics = commands.add_parser("analytics", help="team-wide analytics").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = add_command(
        analytics, "export", cmd_export, "write a team's analytics as CSV (the rows of GET /api/v1/analytics)"
    )
    p.add_argument("--team", required=True, help="team name")
    p.add_argument("--group-by", default="link", help=f"one of {', '.join(service.GROUPS)} (default: link)")
    p.add_argument("--interval", default="none", help="none, hour, day, week or month (default: none)")
    p.add_argument("--from", dest="start", help="RFC 3339 timestamp or date (default: 30 days or buckets back)")
    p.add_argument("--to", dest="end", help="RFC 3339 timestamp or date, a date included (default: now)")
    p.add_argument("--tz", help="IANA time zone of dates and buckets (default: UTC)")
    p.add_argument("--link-id", help="only this link")
    p.add_argument("--label", action="append", help="only links with this label (repeat: all of them)")
    p.add_argument("--domain", help="only links on this hostname")
    p.add_argument("--country", help="only clicks from this country")
    p.add_argument("--source", help="only clicks of this source (direct, qr, bio)")
    p.add_argument("--limit", type=int, default=EXPORT_LIMIT, help="at most this many group values (default: all)")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")
