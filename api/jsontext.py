"""What JSON allows but PostgreSQL, our records and our responses cannot carry.

``json.loads`` accepts NUL characters (``"\\u0000"``), lone surrogate escapes (``"\\ud800"``),
integers of any size and ``NaN``/``Infinity``. PostgreSQL text and jsonb reject NUL, nothing
can encode a lone surrogate as UTF-8, jsonb and orjson stop at 64-bit integers, and JSON
itself has no NaN. Nesting is bounded too: orjson refuses to encode more than 255 levels, and
nothing linkedge stores needs more than :data:`MAX_DEPTH`. Request bodies are checked here before
their models validate them, so such input is a 422 naming where it is (``blocks[2].config.size``)
instead of a 500 at INSERT or when the response is encoded.
"""

from __future__ import annotations

import math
from typing import Any

from api.errors import ValidationFailed

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 32  # objects and arrays inside one another, counting the body itself


def json_problem(value: Any, field: str = "", depth: int = 0) -> tuple[str, str] | None:
    """The first unstorable value in ``value``: ``(field, problem)``, or ``None``."""
    where = field or "body"
    if isinstance(value, dict | list):
        depth += 1
        if depth > MAX_DEPTH:
            return where, f"is nested too deeply (at most {MAX_DEPTH} levels of objects and arrays)"
    if isinstance(value, str):
        if "\x00" in value:
            return where, "must not contain NUL characters"
        try:
            value.encode()
        except UnicodeEncodeError:
            return where, "contains a lone surrogate escape, which is not valid Unicode text"
        return None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else (where, "is a number out of range (64-bit integers only)")
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, "must be a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            bad_key = json_problem(key, where)
            if bad_key is not None:
                return where, f"has a key that {bad_key[1]}"
            problem = json_problem(item, f"{field}.{key}" if field else str(key), depth)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = json_problem(item, f"{field}[{i}]", depth)
            if problem is not None:
                return problem
    return None


def check_json(value: Any) -> Any:
    """For a ``model_validator(mode="before")``: ``value`` unchanged, or a 422 naming the field.

    It raises :class:`~api.errors.ValidationFailed` itself (pydantic lets any exception other
    than ``ValueError`` through), so the error names the nested field, not just "body".
    """
    problem = json_problem(value)
    if problem is not None:
        raise ValidationFailed.field(*problem)
    return value
