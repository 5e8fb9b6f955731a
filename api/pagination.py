"""Opaque keyset cursors for newest-first lists: ``(created_at, id)`` of the last row shown."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Query

from api.errors import ValidationFailed


@dataclass(frozen=True)
class PageParams:
    per_page: int
    after: tuple[datetime, uuid.UUID] | None


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = raw.partition("|")
        return datetime.fromisoformat(stamp), uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValidationFailed.field("cursor", "is not a cursor returned by this API") from e


def page_params(
    per_page: int = Query(25, description="Items per page, 1-100."),
    cursor: str | None = Query(None, description="meta.next_cursor of the previous page."),
) -> PageParams:
    if not 1 <= per_page <= 100:
        raise ValidationFailed.field("per_page", "must be between 1 and 100")
    return PageParams(per_page, decode_cursor(cursor) if cursor else None)


def paginate(rows: Sequence[Mapping[str, Any]], per_page: int) -> tuple[list[Mapping[str, Any]], str | None]:
    """Split rows fetched with ``LIMIT per_page + 1`` into the page and the next cursor (None on the last page)."""
    page = list(rows[:per_page])
    if len(rows) <= per_page:
        return page, None
    last = page[-1]
    return page, encode_cursor(last["created_at"], last["id"])
