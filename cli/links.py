"""``linkedge links import FILE`` and ``linkedge links export``: CSV or JSON files of links.

CSV has one link a row with a header naming the fields (``url`` required; ``custom_slug``,
``labels`` separated by ``;``, ``expires_at``, ``title``, ``routing_rules`` as JSON, ...). JSON is
an array of link objects (or ``{"data": [...]}``, as the API returns them). Export writes the same
shapes, so an export imports again. Validation and per-row errors are :mod:`api.links.io`'s.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from api.links.io import export_links, import_links
from api.settings import Settings
from cli.common import CliError, add_command, pool_and_redis, pool_only, progress_bar
from kit.postgres import Conn

LIST_SEPARATOR = ";"


class FileError(ValueError):
    """The file cannot be read as links; reported as one line by the CLI."""


def detect_format(path: str | None, given: str | None) -> str:
    if given:
        return given
    suffix = Path(path).suffix.lower() if path else ""
    if suffix in (".csv", ".json"):
        return suffix[1:]
    if path is None or path == "-":
        return "csv"
    raise FileError(f"cannot tell the format of {path!r} from its name; pass --format csv or --format json")


def parse_csv(text: str) -> list[dict[str, Any]]:
    """Row dicts from CSV text: empty cells dropped, ``labels`` split, JSON-looking cells decoded."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "url" not in [f.strip() for f in reader.fieldnames]:
        raise FileError("the CSV file needs a header row with at least a 'url' column")
    rows: list[dict[str, Any]] = []
    for raw in reader:
        row: dict[str, Any] = {}
        for name, cell in raw.items():
            if name is None or cell is None or not cell.strip():
                continue  # missing or extra cells, and empty ones, mean "not given"
            name, cell = name.strip(), cell.strip()
            if name == "labels":
                row[name] = [label.strip() for label in cell.split(LIST_SEPARATOR) if label.strip()]
            elif cell[0] in "[{":
                try:
                    row[name] = json.loads(cell)
                except ValueError:
                    row[name] = cell  # left as text: the import reports the field as invalid
            else:
                row[name] = cell
        rows.append(row)
    return rows


def parse_json(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise FileError(f"the JSON file is not valid JSON: {e}") from None
    if isinstance(data, dict):
        data = data.get("data", data.get("links"))
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise FileError('the JSON file must hold an array of link objects (or {"data": [...]})')
    return data


def read_rows(path: str, fmt: str) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise FileError(f"cannot read {path}: {e.strerror if isinstance(e, OSError) else e}") from None
    return parse_csv(text) if fmt == "csv" else parse_json(text)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _json_default(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return LIST_SEPARATOR.join(value)
    if isinstance(value, list | dict):
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    return str(value)


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return moment.isoformat(timespec="seconds") + "Z"
    if isinstance(value, date | uuid.UUID):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


async def _team_id(conn: Conn, name: str | None) -> uuid.UUID:
    if name:
        team_id = await conn.fetchval("SELECT id FROM teams WHERE name = $1", name)
        if team_id is None:
            raise CliError(f"no team named {name!r}")
        return uuid.UUID(str(team_id))
    teams = await conn.fetch("SELECT id, name FROM teams ORDER BY name LIMIT 11")
    if len(teams) == 1:
        return uuid.UUID(str(teams[0]["id"]))
    names = ", ".join(t["name"] for t in teams[:10]) or "none yet"
    raise CliError(f"pass --team NAME (teams: {names})")


async def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    rows = read_rows(args.file, detect_format(args.file, args.format))
    async with pool_and_redis(settings, pool_size=4) as (pool, redis):
        async with pool.acquire() as conn:
            team_id = await _team_id(conn, args.team)
        with progress_bar(f"importing {len(rows)} links") as progress:
            report = await import_links(pool, redis, settings, team_id, rows, progress)
    for number, message in report.errors:
        print(f"row {number}: {message}", file=sys.stderr)
    print(f"created {report.created} links; {len(report.errors)} rows failed")
    return 1 if report.errors else 0


async def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    fmt = detect_format(args.output, args.format)
    to_file = args.output not in (None, "-")
    async with pool_only(settings) as pool:
        async with pool.acquire() as conn:
            team_id = await _team_id(conn, args.team)
            total = await conn.fetchval("SELECT count(*) FROM links WHERE team_id = $1", team_id)
            out = open(args.output, "w", encoding="utf-8", newline="") if to_file else sys.stdout
            try:
                with progress_bar(f"exporting {total} links") as progress:
                    count = await _write(export_links(conn, team_id, settings), fmt, out, lambda n: progress(n, total))
                    progress(count, count)
            finally:
                if to_file:
                    out.close()
    if to_file:
        print(f"exported {count} links to {args.output}", file=sys.stderr)
    return 0


async def _write(rows: AsyncIterator[dict[str, Any]], fmt: str, out: TextIO, progress: Callable[[int], None]) -> int:
    """Stream rows to ``out`` as CSV or a JSON array; returns how many were written."""
    count = 0
    writer: csv.DictWriter[str] | None = None
    async for row in rows:
        if fmt == "json":
            out.write(("[\n  " if count == 0 else ",\n  ") + json.dumps(row, default=_json_default, ensure_ascii=False))
        else:
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row), extrasaction="ignore", lineterminator="\n")
                writer.writeheader()
            writer.writerow({k: _cell(v) for k, v in row.items()})
        count += 1
        if count % 500 == 0:
            progress(count)
    if fmt == "json":
        out.write("\n]\n" if count else "[]\n")
    elif writer is None:
        out.write("url\n")  # an empty export is still a valid, importable file
    return count


def add_commands(commands: Any) -> None:
    command = add_command
    links = commands.add_parser("links", help="import and export links").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = command(links, "import", cmd_import, "create links from a CSV or JSON file, reporting per-row errors")
    p.add_argument("file", help="CSV or JSON file ('-' reads stdin as CSV unless --format json)")
    p.add_argument("--team", help="team name (optional when there is only one team)")
    p.add_argument("--format", choices=("csv", "json"), help="default: from the file name")
    p = command(links, "export", cmd_export, "write a team's links as CSV or JSON")
    p.add_argument("--team", help="team name (optional when there is only one team)")
    p.add_argument("--format", choices=("csv", "json"), help="default: from -o's name, else csv")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
