"""Opaque keyset cursors for newest-first lists: ``(created_at, id)`` of the last row shown.

A cursor is parsed strictly: exactly what :func:`encode_cursor` writes (a UTC timestamp in the
range rows can have, and a UUID or a positive 64-bit id) or a 422 naming ``cursor``, so a forged
one never reaches a query.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from fastapi import Query

from api.errors import ValidationFailed

RowId = TypeVar("RowId", uuid.UUID, int)
MAX_CURSOR = 200  # characters; ours are about 90
_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class PageParams:
    per_page: int
    after: tuple[datetime, uuid.UUID] | None


def encode_cursor(created_at: datetime, row_id: uuid.UUID | int) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, id_type: type[RowId]) -> tuple[datetime, RowId]:
    """``(created_at, id)`` from a cursor this API wrote, else a 422 naming ``cursor``."""
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp_text, sep, id_text = raw.partition("|")
        stamp = datetime.fromisoformat(stamp_text)
        if not sep or stamp.utcoffset() != timedelta(0) or not _EARLIEST <= stamp < _LATEST:
            raise ValueError("not a row's timestamp")
        if id_type is int:
            if not id_text.isascii() or not id_text.isdigit() or not 0 < int(id_text) <= _INT64_MAX:
                raise ValueError("not a row id")
            return stamp, id_type(id_text)
        return stamp, id_type(id_text)
    except (ValueError, UnicodeDecodeError, TypeError) as e:
        raise ValidationFailed.field("cursor", "is not a cursor returned by this API") from e


def page_params(
    per_page: int = Query(25, description="Items per page, 1-100."),
    cursor: str | None = Query(None, description="meta.next_cursor of the previous page."),
) -> PageParams:
    if not 1 <= per_page <= 100:
        raise ValidationFailed.field("per_page", "must be between 1 and 100")
    return PageParams(per_page, decode_cursor(cursor, uuid.UUID) if cursor else None)


def paginate(rows: Sequence[Mapping[str, Any]], per_page: int) -> tuple[list[Mapping[str, Any]], str | None]:
    """Split rows fetched with ``LIMIT per_page + 1`` into the page and the next cursor (None on the last page)."""
    page = list(rows[:per_page])
    if len(rows) <= per_page:
        return page, None
    last = page[-1]
    return page, encode_cursor(last["created_at"], last["id"])
