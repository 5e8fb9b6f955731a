"""Field rules that the OpenAPI document states and the server enforces, from one definition each.

Each pattern here is written once and used twice: as the JSON Schema ``pattern`` a client (or
schemathesis) reads, and as the regular expression the request models check with ``re.fullmatch``.
The patterns use only syntax that ECMA-262 (what JSON Schema means), Python's ``re`` and most other
engines read alike: explicit character classes, ``\\xhh``/``\\uhhhh`` escapes and ``(?!...)``.

What JSON Schema cannot say (a split's weights adding up to 100, a handle another page holds, a
free-form object's size in bytes, nesting depth) is said in the field's description instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Annotated, Any

from pydantic import BeforeValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# Python's str.isspace() characters, which str.strip() removes (as a regex class body).
WS = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WS_NON_ASCII = r"\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Characters whose NFKC form holds one of / ? # @ :, which urllib refuses in a host (urlsplit's
# _checknetloc raises ValueError for them).
NFKC_URL_DELIMITERS = (
    0x2047, 0x2048, 0x2049, 0x2100, 0x2101, 0x2105, 0x2106, 0x2A74, 0xFE13, 0xFE16,
    0xFE55, 0xFE56, 0xFE5F, 0xFE6B, 0xFF03, 0xFF0F, 0xFF1A, 0xFF1F, 0xFF20,
)  # fmt: skip
_NFKC = "".join(f"\\u{cp:04x}" for cp in NFKC_URL_DELIMITERS)
_CTRL = r"\x00-\x20\x7f"  # C0 controls, space, DEL: never in a URL (redirector.rules.is_http_url)

NO_NUL = r"^[^\x00]*$"
"""Any text without NUL characters (PostgreSQL cannot store them); every free-text field has it."""


def _url(schemes: str) -> str:
    userinfo = rf"(?:[^{_CTRL}{_WS_NON_ASCII}/?#@\[\]\\{_NFKC}]*@)?"
    host = rf"[^{_CTRL}{_WS_NON_ASCII}/?#@\[\]\\:{_NFKC}]+"
    return rf"{schemes}://{userinfo}{host}(?::[0-9]*)?(?:[/?#][^{_CTRL}]*)?"


_HTTP = "[Hh][Tt][Tt][Pp][Ss]?"
_HTTPS = "[Hh][Tt][Tt][Pp][Ss]"
HTTP_URL = f"^{_url(_HTTP)}$"
"""An absolute http(s) URL with a host name or IPv4 address (no IPv6 literal), no spaces or controls."""
HTTP_URL_PADDED = f"^[{WS}]*{_url(_HTTP)}[{WS}]*$"
""":data:`HTTP_URL` with whitespace around it, which is stripped before it is stored."""
HTTPS_URL_PADDED = f"^[{WS}]*{_url(_HTTPS)}[{WS}]*$"


def stripped(max_length: int, min_length: int = 0) -> str:
    """A pattern for text whose ``str.strip()`` has ``min_length`` to ``max_length`` characters (no NUL)."""
    edge = rf"[^{WS}\x00]"
    core = edge if max_length == 1 else rf"{edge}(?:[^\x00]{{0,{max_length - 2}}}{edge})?"
    if min_length == 0:
        core = f"(?:{core})?"
    return rf"^[{WS}]*{core}[{WS}]*$"


def caseless(word: str) -> str:
    """``word`` as a pattern that matches every spelling whose ``str.lower()`` is ``word`` (``[Kk\\u212a]``)."""
    out = []
    for ch in word:
        if not ch.isalpha():
            out.append("\\." if ch == "." else ch)  # words of letters, digits, "-" and "."
            continue
        spellings = sorted({ch, ch.upper(), *_LOWERS_TO.get(ch, ())})
        out.append("[" + "".join(s if s.isascii() else f"\\u{ord(s):04x}" for s in spellings) + "]")
    return "".join(out)


# Non-ASCII characters whose lower() is one ASCII letter (the Kelvin sign lowers to "k").
_LOWERS_TO = {"k": ("\u212a",)}


def one_of_caseless(words: Iterable[str]) -> str:
    return "(?:" + "|".join(caseless(w) for w in sorted(words)) + ")"


def matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def nfkc_url_delimiters() -> list[int]:
    """Recompute :data:`NFKC_URL_DELIMITERS` (slow: every code point); the tests compare the two."""
    found = []
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        norm = unicodedata.normalize("NFKC", chr(cp))
        if norm != chr(cp) and any(c in norm for c in "/?#@:"):
            found.append(cp)
    return found


STRICT_JSON: ContextVar[bool] = ContextVar("linkedge_strict_json", default=False)
"""Set for API requests (:func:`strict_json`): booleans and integers must be JSON booleans and numbers.

Elsewhere (``linkedge links import`` reads CSV, where every cell is text) ``"true"`` and ``"302"`` are
read as pydantic's lax mode reads them.
"""


async def strict_json() -> None:
    """Router dependency: this request's body is JSON, typed as its schema says."""
    STRICT_JSON.set(True)


def _json_int(value: Any) -> Any:
    # JSON integers, and numbers with no fraction (JSON Schema counts 5.0 as an integer); never a
    # string or a boolean, which pydantic's lax mode would turn into one.
    if STRICT_JSON.get() and isinstance(value, bool | str | bytes):
        raise ValueError("must be an integer")
    return value


def _json_bool(value: Any) -> Any:
    if STRICT_JSON.get() and not isinstance(value, bool):
        raise ValueError("must be a boolean")
    return value


JsonIntInput = BeforeValidator(_json_int)
JsonInt = Annotated[int, JsonIntInput]
"""An integer from JSON; limits go before the validator: ``Annotated[int, Field(gt=0), JsonIntInput]``."""
JsonBool = Annotated[bool, BeforeValidator(_json_bool)]


MAX_SAFE_INTEGER = 2**53 - 1
"""Integers in request bodies stay within ±(2**53 - 1), what every JSON reader holds exactly (I-JSON,
RFC 7493): beyond it 2**53 + 1 reads as 2**53, so no document can state a wider bound truthfully."""


def number_problem(value: Any, field: str = "") -> tuple[str, str] | None:
    """An integral number (``1e300`` is one, to JSON Schema) outside ±:data:`MAX_SAFE_INTEGER`, or None.

    :func:`api.jsontext.check_json` catches the rest (NUL, lone surrogates, NaN, nesting)."""
    where = field or "body"
    if isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer():
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return where, f"is a number out of range (integers within ±{MAX_SAFE_INTEGER} only)"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = number_problem(item, f"{field}.{key}" if field else str(key))
            if problem:
                return problem
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = number_problem(item, f"{field}[{i}]")
            if problem:
                return problem
    return None


class NotNull:
    """For a field that may be left out but not sent as ``null``: drops ``null`` from its schema."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        branches = out.get("anyOf")
        if isinstance(branches, list):
            kept = [b for b in branches if b != {"type": "null"}]
            out.pop("anyOf")
            if len(kept) == 1:
                out.update(kept[0])
            else:
                out["anyOf"] = kept
        return out


JSON_VALUE_REF: dict[str, Any] = {"$ref": "#/components/schemas/JsonValue"}
"""Any JSON value linkedge can store: no NUL in strings or keys, 64-bit integers, at most 32 levels deep."""
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": (
        "Any JSON value that can be stored: strings and keys without NUL characters, integers within "
        "±(2**53 - 1), finite numbers, and at most 32 levels of objects and arrays counting the whole body."
    ),
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
        {"type": "number", "not": {"type": "integer"}},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": JSON_VALUE_REF},
        {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": JSON_VALUE_REF},
    ],
}
OPEN_OBJECT: dict[str, Any] = {"propertyNames": {"pattern": NO_NUL}, "additionalProperties": JSON_VALUE_REF}
"""``json_schema_extra`` of a model that ignores (or keeps) keys it does not name."""
