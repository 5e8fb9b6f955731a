"""Request models for links: every field rule that doesn't need the database.

Routing rules are documented exactly here (UrlRule, SplitRule, Conditions) and validated by
:func:`redirector.rules.parse_rules` in the service, which names the exact bad field
(``routing_rules[0].conditions.device``). Patterns come from :mod:`api.fields`.
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
    ValidationError,
    field_validator,
    model_validator,
)

from api.errors import ValidationFailed
from api.fields import (
    HTTP_URL,
    HTTP_URL_PADDED,
    NO_NUL,
    JsonBool,
    JsonInt,
    JsonIntInput,
    NotNull,
    matches,
    number_problem,
    one_of_caseless,
    stripped,
)
from api.jsontext import check_json
from api.links.codes import RESERVED, SLUG_PATTERN, slug_problem
from redirector.cache import REDIRECT_STATUSES
from redirector.hosts import HOSTNAME_PATTERN, canonical_host
from redirector.rules import BROWSERS, DEVICES, MAX_RULES, MAX_VALUES, is_http_url

MAX_LABELS = 10
MAX_HOST = 253
MAX_CLICKS = 2_147_483_647  # the column is a PostgreSQL integer
MAX_URL = 4096  # redirector.rules.is_http_url
MAX_LABEL = 50
MAX_UTM = 255


class _Body(BaseModel):
    """Base of request bodies: unknown fields are errors; text must be real Unicode."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        # NUL, lone surrogates, huge integers, NaN: JSON allows them, storage and responses cannot.
        checked = check_json(data)
        problem = number_problem(checked)
        if problem is not None:
            raise ValidationFailed.field(*problem)
        return checked


def _strip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_URL:  # as sent: the schema's maxLength counts the spaces too
        raise ValueError(f"must be at most {MAX_URL} characters")
    return value.strip() if isinstance(value, str) else value


def _url(value: str) -> str:
    if not is_http_url(value) or not matches(HTTP_URL, value):
        raise ValueError("must be an absolute http(s) URL with a host")
    return value


def _domain(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the str type reports it
    return canonical_host(value.strip().encode("utf-8")) or value  # what the edge compares with


def _slug(value: str) -> str:
    problem = slug_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _instant(text: str) -> datetime:
    """An ISO 8601 time in UTC (``z`` read as ``Z``); a time without an offset is UTC."""
    if text[-1:] == "z":
        text = text[:-1] + "Z"
    moment = datetime.fromisoformat(text)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        raise ValueError("must be a time between the years 1 and 9999 in UTC") from None


def _expiry(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 datetime string such as 2026-09-30T23:59:59Z")
    try:
        return _instant(value.strip())
    except ValueError as e:
        if "between the years" in str(e):
            raise
        raise ValueError("must be an ISO 8601 datetime such as 2026-09-30T23:59:59Z") from None


def _redirect(value: int) -> int:
    if value not in REDIRECT_STATUSES:
        raise ValueError("must be one of 301, 302, 307, 308")
    return value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _identity(value: Any) -> Any:
    return value


def _stripped_text(max_length: int, min_length: int = 0) -> Any:
    def check(value: str) -> str:
        value = value.strip()
        if not min_length <= len(value) <= max_length:
            raise ValueError(f"must have {min_length} to {max_length} characters (surrounding whitespace aside)")
        return value

    return AfterValidator(check)


def text(max_length: int, min_length: int = 0) -> Any:
    """A plain text field: length limits and no NUL (refused by :func:`check_json` for the whole body)."""
    return Field(min_length=min_length, max_length=max_length, json_schema_extra={"pattern": NO_NUL})


# A custom slug: the slug pattern, minus the reserved words (compared case-insensitively).
SLUG_RE = f"^(?!{one_of_caseless(w for w in RESERVED if SLUG_PATTERN.fullmatch(w))}$){SLUG_PATTERN.pattern}$"

Url = Annotated[
    str,
    Field(max_length=MAX_URL, json_schema_extra={"pattern": HTTP_URL_PADDED}, examples=["https://example.com/page"]),
    BeforeValidator(_strip),
    AfterValidator(_url),
]
DomainName = Annotated[
    str,
    BeforeValidator(_domain),
    Field(max_length=MAX_HOST, examples=["go.example.com"], json_schema_extra={"pattern": HOSTNAME_PATTERN}),
]
Slug = Annotated[
    str,
    AfterValidator(_slug),
    Field(
        description="3-64 of [A-Za-z0-9-], case-sensitive; not a reserved word.", json_schema_extra={"pattern": SLUG_RE}
    ),
]
Label = Annotated[str, _stripped_text(MAX_LABEL, 1), Field(json_schema_extra={"pattern": stripped(MAX_LABEL, 1)})]
Labels = Annotated[list[Label], Field(max_length=MAX_LABELS), AfterValidator(_unique)]
Expiry = Annotated[
    datetime,
    BeforeValidator(_expiry),
    Field(description="RFC 3339 (a time without an offset is read as UTC); a past time is accepted."),
]
RedirectType = Annotated[
    JsonInt, AfterValidator(_redirect), Field(json_schema_extra={"enum": sorted(REDIRECT_STATUSES)})
]
MaxClicks = Annotated[int, Field(gt=0, le=MAX_CLICKS), JsonIntInput]
Password = Annotated[str, text(128, 1)]
Title = Annotated[str, text(255)]
Notes = Annotated[str, text(5000)]
UtmValue = Annotated[str, _stripped_text(MAX_UTM), Field(json_schema_extra={"pattern": stripped(MAX_UTM)})]

# --- routing rules: documented exactly, checked by redirector.rules.parse_rules (plus the URL pattern) ---

RuleUrl = Annotated[str, Field(max_length=MAX_URL, json_schema_extra={"pattern": HTTP_URL})]
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_CIDR = rf"^{_OCTET}(?:\.{_OCTET}){{3}}/(?:3[0-2]|[12]?[0-9])$"


def _values(item: dict[str, Any], description: str) -> Any:
    """A condition's values: one string or a non-empty array of at most MAX_VALUES (duplicates dropped)."""
    return Field(
        description=description,
        json_schema_extra={"anyOf": [item, {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_VALUES}]},
    )


def _str(**schema: Any) -> dict[str, Any]:
    return {"type": "string", **schema}


CountryValues = Annotated[Any, NotNull, _values(_str(pattern="^[A-Za-z]{2}$"), "ISO 3166-1 alpha-2 codes.")]
DeviceValues = Annotated[
    Any, NotNull, _values(_str(pattern=f"^{one_of_caseless(DEVICES)}$"), ", ".join(sorted(DEVICES)) + " (any case).")
]
BrowserValues = Annotated[
    Any, NotNull, _values(_str(pattern=f"^{one_of_caseless(BROWSERS)}$"), ", ".join(sorted(BROWSERS)) + " (any case).")
]
LanguageValues = Annotated[
    Any,
    NotNull,
    _values(_str(pattern="^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$", maxLength=35), "Language tags such as fr or pt-BR."),
]
IpValues = Annotated[
    Any,
    NotNull,
    _values({"anyOf": [_str(format="ipv4"), _str(format="ipv6"), _str(pattern=IPV4_CIDR)]}, "Addresses or CIDRs."),
]
ReferrerValues = Annotated[
    Any,
    NotNull,
    _values(
        _str(pattern=r"^(?![Ww][Ww][Ww]\.[^.]*$)[^/ \x00]*\.[^/ \x00]*$"),
        "Host names (a leading www. is dropped); subdomains match too.",
    ),
]
Moment = Annotated[Any, NotNull, Field(json_schema_extra={"type": "string", "format": "date-time"})]


class Conditions(BaseModel):
    """A rule's conditions: AND across keys, OR within a key's list. At least one key."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    country: CountryValues = Field(None, examples=[["CA", "US"]])
    device: DeviceValues = Field(None, examples=[["ios", "android"]])
    browser: BrowserValues = None
    language: LanguageValues = None
    query: Annotated[
        dict[str, str] | None,
        NotNull,
        Field(
            description='param -> value, "*" for any value',
            json_schema_extra={
                "minProperties": 1,
                "propertyNames": {"minLength": 1, "pattern": NO_NUL},
                "additionalProperties": {"type": "string", "pattern": NO_NUL},
            },
        ),
    ] = None
    ip: IpValues = None
    referrer_host: ReferrerValues = None
    after: Moment = Field(None, description="From this moment on (RFC 3339, with an offset).")
    before: Moment = Field(None, description="Until this moment (RFC 3339); must be later than after.")


class SplitVariant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: RuleUrl
    weight: int = Field(ge=1, le=99, description="Percent of visitors; a split's weights add up to 100.")


class UrlRule(BaseModel):
    """Visitors matching ``conditions`` go to ``url``."""

    model_config = ConfigDict(extra="forbid")

    url: RuleUrl
    conditions: Conditions


class SplitRule(BaseModel):
    """Visitors (matching ``conditions``, if any) are split between 2-4 URLs by weight."""

    model_config = ConfigDict(extra="forbid")

    split: list[SplitVariant] = Field(min_length=2, max_length=4)
    conditions: Conditions | None = None


def _rule_problems(raw: Any) -> list[dict[str, str]]:
    """What parse_rules lets through but the documented patterns refuse, named like parse_rules does."""
    problems: list[dict[str, str]] = []
    if not isinstance(raw, list):
        return problems
    for i, rule in enumerate(raw):
        if not isinstance(rule, dict):
            continue
        path = f"routing_rules[{i}]"
        urls = [(f"{path}.url", rule.get("url"))]
        split = rule.get("split")
        if isinstance(split, list):
            for j, variant in enumerate(split):
                if isinstance(variant, dict):
                    urls.append((f"{path}.split[{j}].url", variant.get("url")))
                    weight = variant.get("weight")
                    if isinstance(weight, float) and weight.is_integer():
                        variant["weight"] = int(weight)  # JSON Schema's integer includes 50.0
        for field, url in urls:
            if isinstance(url, str) and is_http_url(url) and not matches(HTTP_URL, url):
                problems.append({"field": field, "message": "must be an absolute http(s) URL"})
        conditions = rule.get("conditions")
        if isinstance(conditions, dict):
            for key in ("after", "before"):
                value = conditions.get(key)
                if isinstance(value, str):
                    try:
                        _instant(value)
                    except ValueError as e:
                        if "between the years" in str(e):
                            problems.append({"field": f"{path}.conditions.{key}", "message": str(e)})
    return problems


def _rules(value: Any) -> Any:
    problems = _rule_problems(value)
    if problems:
        raise ValidationFailed(sentence(problems), details=problems)
    return value


Rules = Annotated[
    list[Annotated[Any, PlainValidator(_identity, json_schema_input_type=UrlRule | SplitRule)]],
    Field(max_length=MAX_RULES),
    AfterValidator(_rules),
]


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
    enabled: JsonBool = True
    redirect_type: RedirectType = 302
    forward_query: JsonBool = Field(False, description="Pass the short URL's query string on to the destination.")
    max_clicks: MaxClicks | None = Field(None, description="After this many clicks the link answers 410.")
    password: Password | None = Field(None, description="Visitors must enter it first; stored hashed.")
    title: Title | None = None
    notes: Notes | None = None
    utm: Utm | None = None
    domain: DomainName | None = Field(
        None, description="Hostname of one of the team's domains; omitted: the service's own domain."
    )
    expired_url: Url | None = Field(
        None, description="Where the link goes once expired or used up (else the domain's expired_url, else 410)."
    )
    crawlable: JsonBool = Field(False, description="Let search engines index the link (no X-Robots-Tag: noindex).")


NOT_NULL = ("url", "custom_slug", "enabled", "redirect_type", "forward_query", "domain", "crawlable")


class LinkUpdate(_Body):
    """A partial update: only the fields present change; ``null`` clears the nullable ones."""

    url: Annotated[Url | None, NotNull] = None
    custom_slug: Annotated[Slug | None, NotNull] = Field(
        None, description="Changes the short code; the old one stops working."
    )
    labels: Labels | None = None
    routing_rules: Rules | None = None
    expires_at: Expiry | None = None
    enabled: Annotated[JsonBool | None, NotNull] = None
    redirect_type: Annotated[RedirectType | None, NotNull] = None
    forward_query: Annotated[JsonBool | None, NotNull] = None
    max_clicks: MaxClicks | None = None
    password: Password | None = Field(None, description="null removes the password.")
    title: Title | None = None
    notes: Notes | None = None
    utm: Utm | None = None
    domain: Annotated[DomainName | None, NotNull] = Field(
        None, description="Moves the link to another of the team's domains (the old URL stops working)."
    )
    expired_url: Url | None = None
    crawlable: Annotated[JsonBool | None, NotNull] = None

    @field_validator(*NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


class BulkCreate(_Body):
    """Up to 100 links. Each item is validated on its own: a valid item is created, an invalid one
    (not a LinkCreate, a taken slug, past the plan's limit) is reported in ``data.errors`` by its index,
    and the answer is a 201 either way. Only a body that is not such a list is a 422."""

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
