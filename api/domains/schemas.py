"""Request models for domains: the hostname, the kind, the fallbacks and the deep-link files."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, field_validator

from api.fields import NO_NUL, OPEN_OBJECT, NotNull
from api.links.schemas import Url, _Body
from redirector.hosts import HOSTNAME_PATTERN, MAX_HOSTNAME, parse_hostname

MAX_DEEP_LINK_FILE = 64 * 1024  # bytes of JSON; Apple's own limit for the AASA file is 128 KB
AASA_SECTIONS = ("applinks", "webcredentials", "appclips", "activitycontinuation")


def _hostname(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the str type reports it
    try:
        return parse_hostname(value)
    except ValueError as e:
        raise ValueError(str(e)) from None


def _json_size(value: Any) -> None:
    if len(orjson.dumps(value)) > MAX_DEEP_LINK_FILE:
        raise ValueError(f"must be at most {MAX_DEEP_LINK_FILE // 1024} KB of JSON")


def _aasa(value: dict[str, Any]) -> dict[str, Any]:
    """Apple's apple-app-site-association: an object with at least one known section, each an object."""
    sections = [k for k in AASA_SECTIONS if k in value]
    if not sections:
        raise ValueError(f"must have at least one of {', '.join(AASA_SECTIONS)}")
    for name in sections:
        if not isinstance(value[name], dict):
            raise ValueError(f"'{name}' must be an object")
    _json_size(value)
    return value


def _assetlinks(value: list[Any]) -> list[Any]:
    """Android's Digital Asset Links: a list of statements, each with ``relation`` and ``target``."""
    for i, statement in enumerate(value):
        if not isinstance(statement, dict):
            raise ValueError(f"item {i} must be an object with 'relation' and 'target'")
        relation, target = statement.get("relation"), statement.get("target")
        if not isinstance(relation, list) or not relation or not all(isinstance(r, str) and r for r in relation):
            raise ValueError(f"item {i}: 'relation' must be a non-empty list of strings")
        if not isinstance(target, dict) or not isinstance(target.get("namespace"), str):
            raise ValueError(f"item {i}: 'target' must be an object with a 'namespace' string")
    _json_size(value)
    return value


Hostname = Annotated[
    str,
    BeforeValidator(_hostname),
    Field(
        max_length=MAX_HOSTNAME,
        description=(
            "A hostname you control, such as go.example.com; an internationalised name (Unicode) is "
            "accepted too and stored as punycode. Not the service's own hostname."
        ),
        examples=["go.example.com"],
        json_schema_extra={"pattern": HOSTNAME_PATTERN},
    ),
]
Kind = Literal["links", "bio", "both"]
_SECTION = {"type": "object", **OPEN_OBJECT}
_STRING = {"type": "string", "pattern": NO_NUL}
Aasa = Annotated[
    dict[str, Any],
    AfterValidator(_aasa),
    Field(
        description=(
            "Served at /.well-known/apple-app-site-association (iOS universal links): an object with "
            f"at least one of {', '.join(AASA_SECTIONS)}, each an object; at most 64 KB of JSON."
        ),
        json_schema_extra={
            **OPEN_OBJECT,
            "anyOf": [{"required": [name]} for name in AASA_SECTIONS],
            "properties": dict.fromkeys(AASA_SECTIONS, _SECTION),
        },
    ),
]
_STATEMENT = {
    "type": "object",
    "required": ["relation", "target"],
    "properties": {
        "relation": {"type": "array", "minItems": 1, "items": {**_STRING, "minLength": 1}},
        "target": {"type": "object", "required": ["namespace"], "properties": {"namespace": _STRING}, **OPEN_OBJECT},
    },
    **OPEN_OBJECT,
}
AssetLinks = Annotated[
    list[Any],
    AfterValidator(_assetlinks),
    Field(
        description=(
            "Served at /.well-known/assetlinks.json (Android app links): Digital Asset Links statements, "
            "each with relation and target; at most 64 KB of JSON."
        ),
        json_schema_extra={"items": _STATEMENT},
    ),
]


class DomainSettings(_Body):
    root_url: Url | None = Field(None, description="Where / redirects; omitted: 404 (or the bio page).")
    not_found_url: Url | None = Field(None, description="Unknown codes redirect here instead of answering 404.")
    expired_url: Url | None = Field(
        None, description="Expired or used-up links redirect here instead of 410 (a link's own expired_url wins)."
    )
    apple_app_site_association: Aasa | None = None
    assetlinks: AssetLinks | None = None


class DomainCreate(DomainSettings):
    """A domain to add; it serves nothing until ownership is verified."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"hostname": "go.example.com", "kind": "links"}]})

    hostname: Hostname
    kind: Kind = Field("links", description="links: short links; bio: bio pages; both.")


class DomainUpdate(DomainSettings):
    """A partial update: only the fields present change; ``null`` clears a setting."""

    kind: Annotated[Kind | None, NotNull] = None

    @field_validator("kind", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value
