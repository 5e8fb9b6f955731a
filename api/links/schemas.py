"""Request models for links: every field rule that doesn't need the database.

Routing rules are typed loosely here and validated by :func:`redirector.rules.parse_rules` in the
service, which names the exact bad field (``routing_rules[0].conditions.device``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from api.jsontext import check_json
from api.links.codes import slug_problem
from redirector.cache import REDIRECT_STATUSES
from redirector.rules import is_http_url

MAX_LABELS = 10
MAX_CLICKS = 2_147_483_647  # the column is a PostgreSQL integer


class _Body(BaseModel):
    """Base of request bodies: unknown fields are errors; text must be real Unicode."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        # NUL, lone surrogates, huge integers, NaN: JSON allows them, storage and responses cannot.
        return check_json(data)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _url(value: str) -> str:
    if not is_http_url(value):
        raise ValueError("must be an absolute http(s) URL with a host")
    return value


def _slug(value: str) -> str:
    problem = slug_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _expiry(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("must be an ISO 8601 datetime such as 2026-09-30T23:59:59Z") from None
    else:
        raise ValueError("must be an ISO 8601 datetime string such as 2026-09-30T23:59:59Z")
    # A datetime without an offset is read as UTC, the only zone the API speaks.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _redirect(value: int) -> int:
    if value not in REDIRECT_STATUSES:
        raise ValueError("must be one of 301, 302, 307, 308")
    return value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _identity(value: Any) -> Any:
    return value


Url = Annotated[str, BeforeValidator(_strip), AfterValidator(_url), Field(examples=["https://example.com/page"])]
Slug = Annotated[str, AfterValidator(_slug), Field(description="3-64 of [A-Za-z0-9-], case-sensitive.")]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Labels = Annotated[list[Label], Field(max_length=MAX_LABELS), AfterValidator(_unique)]
Expiry = Annotated[datetime, BeforeValidator(_expiry), Field(description="ISO 8601; a past time is accepted.")]
RedirectType = Annotated[int, AfterValidator(_redirect), Field(json_schema_extra={"enum": sorted(REDIRECT_STATUSES)})]
MaxClicks = Annotated[int, Field(gt=0, le=MAX_CLICKS)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Title = Annotated[str, StringConstraints(max_length=255)]
Notes = Annotated[str, StringConstraints(max_length=5000)]
UtmValue = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]


class Conditions(BaseModel):
    """Documentation of a rule's conditions: AND across keys, OR within a key's list."""

    country: list[str] | None = Field(None, examples=[["CA", "US"]])
    device: list[str] | None = Field(None, examples=[["ios", "android"]])
    browser: list[str] | None = None
    language: list[str] | None = None
    query: dict[str, str] | None = Field(None, description='param -> value, "*" for any value')
    ip: list[str] | None = Field(None, description="addresses or CIDRs")
    referrer_host: list[str] | None = None
    after: datetime | None = None
    before: datetime | None = None


class SplitVariant(BaseModel):
    url: str
    weight: int = Field(ge=1, le=99)


class RoutingRule(BaseModel):
    """One rule: ``url`` + ``conditions``, or a ``split`` of 2-4 weighted URLs (optionally with conditions)."""

    url: str | None = None
    split: list[SplitVariant] | None = None
    conditions: Conditions | None = None


Rules = list[Annotated[Any, PlainValidator(_identity, json_schema_input_type=RoutingRule)]]


class Utm(_Body):
    """UTM parameters merged into the destination as ``utm_*`` query parameters."""

    source: UtmValue | None = None
    medium: UtmValue | None = None
    campaign: UtmValue | None = None
    term: UtmValue | None = None
    content: UtmValue | None = None

    def params(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


class LinkCreate(_Body):
    """A new short link."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/summer-sale?utm_source=qr",
                    "custom_slug": "summer24",
                    "labels": ["campaign", "summer"],
                    "expires_at": "2026-09-30T23:59:59Z",
                }
            ]
        },
    )

    url: Url = Field(description="Destination: an absolute http(s) URL.")
    custom_slug: Slug | None = Field(None, description="Custom short code; omitted: a random 7-character code.")
    labels: Labels | None = Field(None, description=f"At most {MAX_LABELS} labels of 1-50 characters.")
    routing_rules: Rules | None = Field(None, description="Ordered rules; the first match decides the destination.")
    expires_at: Expiry | None = None
    enabled: bool = True
    redirect_type: RedirectType = 302
    forward_query: bool = Field(False, description="Pass the short URL's query string on to the destination.")
    max_clicks: MaxClicks | None = Field(None, description="After this many clicks the link answers 410.")
    password: Password | None = Field(None, description="Visitors must enter it first; stored hashed.")
    title: Title | None = None
    notes: Notes | None = None
    utm: Utm | None = None


NOT_NULL = ("url", "custom_slug", "enabled", "redirect_type", "forward_query")


class LinkUpdate(_Body):
    """A partial update: only the fields present change; ``null`` clears the nullable ones."""

    url: Url | None = None
    custom_slug: Slug | None = Field(None, description="Changes the short code; the old one stops working.")
    labels: Labels | None = None
    routing_rules: Rules | None = None
    expires_at: Expiry | None = None
    enabled: bool | None = None
    redirect_type: RedirectType | None = None
    forward_query: bool | None = None
    max_clicks: MaxClicks | None = None
    password: Password | None = Field(None, description="null removes the password.")
    title: Title | None = None
    notes: Notes | None = None
    utm: Utm | None = None

    @field_validator(*NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


class BulkCreate(_Body):
    """Up to 100 links; each item is validated on its own and reported by its index."""

    links: Annotated[
        list[Annotated[Any, PlainValidator(_identity, json_schema_input_type=LinkCreate)]],
        Field(min_length=1, max_length=100),
    ]


def field_name(loc: tuple[int | str, ...]) -> str:
    """``("labels", 0)`` -> ``labels[0]``, as the API's 422 details name fields."""
    name = ""
    for part in loc:
        if isinstance(part, int) or str(part).isdigit():
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "body"


def error_details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": field_name(tuple(e["loc"])), "message": str(e["msg"]).removeprefix("Value error, ")}
        for e in exc.errors()
    ]


def sentence(details: list[dict[str, str]]) -> str:
    """One sentence naming every bad field, for bulk items and import rows."""
    parts = [f"{d['field']} ({d['message'].rstrip('.')})" for d in details]
    if len(parts) == 1:
        return f"Invalid value for {details[0]['field']}: {details[0]['message'].rstrip('.')}."
    return f"Invalid values for {', '.join(parts)}."
