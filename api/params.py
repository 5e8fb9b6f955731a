"""Query parameters that several routes share, each checked here once.

Free text in a query string goes to PostgreSQL like a body does, so it is refused for the same
reasons (:mod:`api.jsontext`): NUL characters and lone surrogates are a 422 naming the
parameter, never a 500 from the query.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import available_timezones

from fastapi import Depends, Query
from pydantic import AfterValidator

from api.fields import NO_NUL
from api.jsontext import json_problem
from api.stats.window import INTERVALS, WindowQuery

MAX_SEARCH = 200


def _plain(value: str) -> str:
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem[1])
    return value


def plain_text(value: str | None) -> str | None:
    """``value`` unchanged, or a ``ValueError`` that the 422 names the parameter with."""
    return None if value is None else _plain(value)


def plain_texts(values: list[str] | None) -> list[str] | None:
    return None if values is None else [_plain(v) for v in values]


_TEXT = {"pattern": NO_NUL}
Search = Annotated[
    str | None,
    Query(max_length=MAX_SEARCH, description="Case-insensitive substring to look for.", json_schema_extra=_TEXT),
    AfterValidator(plain_text),
]
SearchText = Annotated[
    str,
    Query(max_length=MAX_SEARCH, description="Text to look for.", json_schema_extra=_TEXT),
    AfterValidator(plain_text),
]
DomainFilter = Annotated[
    str | None,
    Query(
        max_length=253,
        description="Only links on this domain (a hostname; the service's own host for links without one).",
        json_schema_extra=_TEXT,
    ),
    AfterValidator(plain_text),
]
Labels = Annotated[
    list[str] | None,
    Query(
        description="Only links with this label (repeat: all of them); an empty one filters nothing.",
        json_schema_extra={"items": {"type": "string", "pattern": NO_NUL}},
    ),
    AfterValidator(plain_texts),
]


# --- the stats window (checked by api.stats.window.parse_window) ---------------------------------

# Years a window may name whatever the time zone (the server takes 1970-01-01 to 2100-01-01 in UTC).
_YEAR = "^(?:197[1-9]|19[89][0-9]|20[0-8][0-9]|209[0-8])-"
_MOMENT = {
    "anyOf": [
        {"type": "string", "maxLength": 0},
        {"type": "string", "format": "date", "pattern": _YEAR},
        {"type": "string", "format": "date-time", "pattern": _YEAR},
    ]
}
TIME_ZONES = sorted(available_timezones() | {"UTC"})


def window_params(
    start: Annotated[
        str | None,
        Query(
            alias="from",
            description="RFC 3339 timestamp, or a date (local midnight in `tz`); must be before `to`; empty: left out.",
            json_schema_extra=_MOMENT,
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            alias="to",
            description="RFC 3339 timestamp, or a date (a date `to` includes that day); default: now.",
            json_schema_extra=_MOMENT,
        ),
    ] = None,
    tz: Annotated[
        str | None,
        Query(
            description="IANA time zone of dates and buckets; empty or left out: UTC.",
            json_schema_extra={"enum": ["", *TIME_ZONES]},
        ),
    ] = None,
) -> WindowQuery:
    return WindowQuery(start, end, tz)


WindowParams = Annotated[WindowQuery, Depends(window_params)]
Interval = Annotated[
    str | None,
    Query(
        description="hour | day | week (weeks start on Monday); empty or left out: day. Hourly series hold at "
        "most 2000 hours.",
        json_schema_extra={"enum": ["", *INTERVALS]},
    ),
]
