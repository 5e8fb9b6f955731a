"""Query parameters that several routes share, each checked here once.

Free text in a query string goes to PostgreSQL like a body does, so it is refused for the same
reasons (:mod:`api.jsontext`): NUL characters and lone surrogates are a 422 naming the
parameter, never a 500 from the query.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator

from api.jsontext import json_problem

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


Search = Annotated[
    str | None,
    Query(max_length=MAX_SEARCH, description="Case-insensitive substring to look for."),
    AfterValidator(plain_text),
]
SearchText = Annotated[str, Query(max_length=MAX_SEARCH, description="Text to look for."), AfterValidator(plain_text)]
Labels = Annotated[
    list[str] | None,
    Query(description="Only links with this label (repeat: all of them)."),
    AfterValidator(plain_texts),
]
