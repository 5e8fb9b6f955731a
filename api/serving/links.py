"""Building the edge's link records from PostgreSQL rows (used by writes, repairs and rebuilds)."""

from __future__ import annotations

from kit.postgres import Row
from redirector.cache import LinkRecord, encode_record

LINK_RECORD_COLUMNS = (
    "id, team_id, code, destination, enabled, expires_at, redirect_type, forward_query, max_clicks, "
    "password_hash, routing_rules, domain_id, expired_url, crawlable"
)


def link_record(row: Row) -> LinkRecord:
    expires = row["expires_at"]
    return LinkRecord(
        id=str(row["id"]),
        team_id=str(row["team_id"]),
        code=row["code"],
        url=row["destination"],
        status=row["redirect_type"],
        enabled=row["enabled"],
        expires_at=expires.timestamp() if expires is not None else None,
        forward_query=row["forward_query"],
        max_clicks=row["max_clicks"],
        password_hash=row["password_hash"],
        expired_url=row["expired_url"],
        crawlable=row["crawlable"],
        raw_rules=tuple(row["routing_rules"] or ()),
    )


def encode_link_row(row: Row) -> bytes:
    return encode_record(link_record(row))
