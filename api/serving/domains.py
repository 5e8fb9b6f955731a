"""Domain cache records (``DomainRecord``): a verified domain compiled for the edge.

Only verified, not deleted domains have a record, so the edge serves nothing on a hostname whose
ownership is unproved. The record carries pre-rendered bodies for ``/robots.txt`` (everything
disallowed but the domain's crawlable links) and the two deep-link files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import orjson

from kit.postgres import Conn, Row
from redirector.cache import DomainRecord, encode_domain

DOMAIN_COLUMNS = (
    "id, team_id, hostname, kind, root_url, not_found_url, expired_url, apple_app_site_association, assetlinks"
)
LIVE = "verified_at IS NOT NULL AND deleted_at IS NULL"
MAX_ROBOTS_ALLOWS = 10_000  # crawlable links listed in robots.txt; past that, the X-Robots-Tag still decides


def render_robots(crawlable: Sequence[str], page_at_root: bool) -> bytes:
    """Disallow everything but the crawlable links (exact paths) and a bio page at ``/``."""
    lines = ["User-agent: *"]
    if page_at_root:
        lines.append("Allow: /$")
    lines += [f"Allow: /{code}$" for code in crawlable]
    lines.append("Disallow: /")
    return ("\n".join(lines) + "\n").encode()


def _json(value: object) -> bytes | None:
    return orjson.dumps(value) if value is not None else None


def build_record(row: Row, page_handle: str | None, crawlable: Sequence[str]) -> DomainRecord:
    kind = row["kind"]
    bio = kind in ("bio", "both")
    return DomainRecord(
        id=str(row["id"]),
        team_id=str(row["team_id"]),
        hostname=row["hostname"],
        links=kind in ("links", "both"),
        bio=bio,
        root_url=row["root_url"],
        not_found_url=row["not_found_url"],
        expired_url=row["expired_url"],
        page_handle=page_handle if bio else None,
        robots=render_robots(crawlable if kind != "bio" else (), bio and page_handle is not None),
        aasa=_json(row["apple_app_site_association"]),
        assetlinks=_json(row["assetlinks"]),
    )


async def _parts(conn: Conn, row: Row) -> tuple[str | None, list[str]]:
    handle = await conn.fetchval(
        "SELECT handle FROM bio_pages WHERE domain_id = $1 AND deleted_at IS NULL AND is_published", row["id"]
    )
    codes = await conn.fetch(
        "SELECT code FROM links WHERE domain_id = $1 AND crawlable AND enabled ORDER BY code LIMIT $2",
        row["id"],
        MAX_ROBOTS_ALLOWS,
    )
    return handle, [r["code"] for r in codes]


async def domain_record(conn: Conn, hostname: str) -> bytes | None:
    """The encoded record of the live domain ``hostname``, else None (unverified, deleted, unknown)."""
    row = await conn.fetchrow(f"SELECT {DOMAIN_COLUMNS} FROM domains WHERE hostname = $1 AND {LIVE}", hostname)
    if row is None:
        return None
    handle, crawlable = await _parts(conn, row)
    return encode_domain(build_record(row, handle, crawlable))


async def iter_domain_records(conn: Conn) -> AsyncIterator[tuple[str, bytes]]:
    """(hostname, encoded DomainRecord) for every live domain."""
    for row in await conn.fetch(f"SELECT {DOMAIN_COLUMNS} FROM domains WHERE {LIVE} ORDER BY hostname"):
        handle, crawlable = await _parts(conn, row)
        yield row["hostname"], encode_domain(build_record(row, handle, crawlable))
