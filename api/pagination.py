"""Keyset cursors for newest-first lists: ``(created_at, id)`` of the last row shown.

A cursor is ``<microseconds since 1970 UTC>.<id>`` (the id as 32 hex digits for a UUID, as digits
for a 64-bit id). Clients treat it as opaque; its exact form is a ``pattern`` in the OpenAPI document,
and anything else is a 422 naming ``cursor``, so a forged one never reaches a query. Every value the
pattern admits is a usable cursor (at most 16 digits of microseconds stays before the year 2287).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Query

from api.errors import ValidationFailed

RowId = TypeVar("RowId", uuid.UUID, int)
MAX_PER_PAGE = 100
UUID_CURSOR = r"^(?:[0-9]{1,16}\.[0-9a-f]{32})?$"
INT_CURSOR = r"^(?:[0-9]{1,16}\.[0-9]{1,18})?$"
CURSOR_HELP = "meta.next_cursor of the previous page; empty or left out: the first page."
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PageParams:
    per_page: int
    after: tuple[datetime, uuid.UUID] | None


def encode_cursor(created_at: datetime, row_id: uuid.UUID | int) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{row_id.hex if isinstance(row_id, uuid.UUID) else row_id}"


def decode_cursor(cursor: str, id_type: type[RowId]) -> tuple[datetime, RowId]:
    """``(created_at, id)`` from a cursor this API wrote, else a 422 naming ``cursor``."""
    pattern = UUID_CURSOR if id_type is uuid.UUID else INT_CURSOR
    if not cursor or re.fullmatch(pattern, cursor) is None:
        raise ValidationFailed.field("cursor", "is not a cursor returned by this API")
    micros, _, id_text = cursor.partition(".")
    stamp = _EPOCH + timedelta(microseconds=int(micros))
    return stamp, (uuid.UUID(hex=id_text) if id_type is uuid.UUID else id_type(id_text))  # type: ignore[return-value]


PerPage = Annotated[int, Query(ge=1, le=MAX_PER_PAGE, description="Items per page, 1-100.")]


def cursor_param(pattern: str) -> Any:
    return Query(max_length=52, description=CURSOR_HELP, json_schema_extra={"pattern": pattern})


def page_params(per_page: PerPage = 25, cursor: Annotated[str | None, cursor_param(UUID_CURSOR)] = None) -> PageParams:
    return PageParams(per_page, decode_cursor(cursor, uuid.UUID) if cursor else None)


def paginate(rows: Sequence[Mapping[str, Any]], per_page: int) -> tuple[list[Mapping[str, Any]], str | None]:
    """Split rows fetched with ``LIMIT per_page + 1`` into the page and the next cursor (None on the last page)."""
    page = list(rows[:per_page])
    if len(rows) <= per_page:
        return page, None
    last = page[-1]
    return page, encode_cursor(last["created_at"], last["id"])
