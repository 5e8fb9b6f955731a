"""Request bodies of both bio API shapes.

Pydantic checks types, sizes and formats (so a 422 names the field, e.g. ``theme.accent``);
rules that depend on the stored page (block types on update, link ownership, handles) live in
:mod:`api.bio.service`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from api.bio.handles import HANDLE_RE
from api.bio.handles import RESERVED as RESERVED_HANDLES
from api.errors import ValidationFailed
from api.fields import (
    HTTP_URL,
    HTTP_URL_PADDED,
    HTTPS_URL_PADDED,
    JSON_VALUE_REF,
    MAX_SAFE_INTEGER,
    NO_NUL,
    OPEN_OBJECT,
    WS,
    JsonBool,
    JsonIntInput,
    matches,
    number_problem,
    one_of_caseless,
)
from api.jsontext import check_json
from api.links.schemas import DomainName
from api.serving.embeds import PROVIDERS
from api.serving.themes import BUTTON_STYLES, FONTS, PALETTE_ALIASES, PALETTES, normalise_accent, palette_name
from redirector.rules import is_http_url

BlockType = Literal["link", "header", "text", "social", "embed", "image", "form"]
ButtonStyle = Literal["pill", "rounded", "square", "outline"]
Font = Literal["system", "serif", "mono", "rounded"]
assert set(BUTTON_STYLES) == {"pill", "rounded", "square", "outline"} and set(FONTS) == {
    "system", "serif", "mono", "rounded"
}  # fmt: skip

MAX_BLOCKS = 100
MAX_URL = 2048
ICON_RE = r"^[A-Za-z0-9_-]{1,32}$"
FORM_FIELDS = ("email", "name", "message")  # api.bio.blocks
PALETTE_RE = f"^[{WS}]*{one_of_caseless([*PALETTES, *PALETTE_ALIASES])}[{WS}]*$"
ACCENT_RE = "^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"
# A handle on update: the handle rules minus the reserved words (create turns anything into a handle).
HANDLE_UPDATE_RE = f"^(?!{one_of_caseless(RESERVED_HANDLES)}$){HANDLE_RE.pattern}$"


def check_url(value: str | None) -> str | None:
    """An absolute http(s) URL with a host; ``javascript:``, ``data:``, ``mailto:`` and friends fail.

    (Block links go through the edge's redirect, which only follows http(s).) Surrounding
    whitespace is dropped; what is left must match :data:`api.fields.HTTP_URL`.
    """
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_URL or not is_http_url(value) or not matches(HTTP_URL, value):
        raise ValueError("must be an absolute http(s) URL")
    return value


def check_image_url(value: str | None) -> str | None:
    """Images load on the public page, whose CSP allows only https: images."""
    value = check_url(value)
    if value is not None and not value.lower().startswith("https://"):
        raise ValueError("must be an https URL (the public page only loads https images)")
    return value


def _web_url(value: str) -> str:
    checked = check_url(value)
    assert checked is not None
    return checked


def _image_url(value: str) -> str:
    checked = check_image_url(value)
    assert checked is not None
    return checked


WebUrl = Annotated[
    str, Field(max_length=MAX_URL, json_schema_extra={"pattern": HTTP_URL_PADDED}), AfterValidator(_web_url)
]
ImageUrl = Annotated[
    str, Field(max_length=MAX_URL, json_schema_extra={"pattern": HTTPS_URL_PADDED}), AfterValidator(_image_url)
]


def text(max_length: int, min_length: int = 0, default: Any = None, **extra: Any) -> Any:
    """A text field: length limits, and no NUL (which :func:`check_json` refuses for the whole body)."""
    return Field(default, min_length=min_length, max_length=max_length, json_schema_extra={"pattern": NO_NUL}, **extra)


def _scalar_extras(extra: dict[str, Any] | None, limit: int, what: str) -> None:
    if not extra:
        return
    if len(extra) > limit:
        raise ValueError(f"at most {limit} {what}")
    for key, value in extra.items():
        if len(key) > 40 or (isinstance(value, str) and len(value) > 200) or isinstance(value, dict | list):
            raise ValueError(f"{key!r} must be a short string, number or boolean")


class ThemeIn(BaseModel):
    """Theme tokens. Unknown tokens are kept (short scalars only) but never reach the page."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "description": "Theme tokens. Up to 20 unknown tokens are kept (names of at most 40 characters; "
            "numbers, booleans or strings of at most 200 characters) but never reach the page.",
            "propertyNames": {"maxLength": 40, "pattern": NO_NUL},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": 200, "pattern": NO_NUL},
                    {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
                    {"type": "number", "not": {"type": "integer"}},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
        },
    )

    palette: str | None = Field(
        default=None,
        max_length=32,
        description="light, dark, midnight, sunset, forest, ocean, rose, sand or mono (any case; aliases "
        "default, white, black, night).",
        json_schema_extra={"pattern": PALETTE_RE},
    )
    accent: str | None = Field(
        default=None, max_length=7, description="#rgb or #rrggbb", json_schema_extra={"pattern": ACCENT_RE}
    )
    button_style: ButtonStyle | None = None
    font: Font | None = None

    @field_validator("palette")
    @classmethod
    def _palette(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = palette_name(value)
        if name is None:
            raise ValueError("is not a known palette (light, dark, midnight, sunset, forest, ocean, rose, sand, mono)")
        return name

    @field_validator("accent")
    @classmethod
    def _accent(cls, value: str | None) -> str | None:
        if value is None:
            return None
        accent = normalise_accent(value)
        if accent is None:
            raise ValueError("must be a hex colour like #4f46e5 or #fff")
        return accent

    @model_validator(mode="after")
    def _extras(self) -> ThemeIn:
        _scalar_extras(self.model_extra, 20, "extra theme tokens")
        return self

    def tokens(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class SeoIn(BaseModel):
    model_config = ConfigDict(json_schema_extra=OPEN_OBJECT)

    title: str | None = text(200)
    description: str | None = text(500)
    image: ImageUrl | None = Field(default=None, description="https URL for og:image")
    noindex: JsonBool | None = None


def _block_variants(with_id: bool) -> list[dict[str, Any]]:
    """The block shapes by ``type`` (what :mod:`api.bio.blocks` checks), and with ``with_id`` an edit of
    a stored block, whose rules are those of the stored block's type."""
    url = {"anyOf": [{"type": "string", "maxLength": MAX_URL, "pattern": HTTP_URL_PADDED}, {"type": "null"}]}
    image_url = {"type": "string", "maxLength": MAX_URL, "pattern": HTTPS_URL_PADDED}
    common: dict[str, Any] = {
        "id": {"type": "null"},
        "label": {"anyOf": [{"type": "string", "maxLength": 200, "pattern": NO_NUL}, {"type": "null"}]},
        "icon": {"anyOf": [{"type": "string", "pattern": ICON_RE}, {"type": "null"}]},
        "sort_order": {"anyOf": [{"type": "integer", "minimum": -1_000_000, "maximum": 1_000_000}, {"type": "null"}]},
        "is_active": {"type": ["boolean", "null"]},
        "link_id": {"type": "null"},
        "url": url,
    }

    def config(**props: Any) -> dict[str, Any]:
        return {
            "anyOf": [{"type": "object", **OPEN_OBJECT, "properties": props}, {"type": "null"}],
            "description": "At most 4 KiB of JSON.",
        }

    def nullable(schema: dict[str, Any]) -> dict[str, Any]:
        return {"anyOf": [schema, {"type": "null"}]}

    def text_of(limit: int) -> dict[str, Any]:
        return nullable({"type": "string", "maxLength": limit, "pattern": NO_NUL})

    size = nullable({"type": "integer", "minimum": 1, "maximum": 10000})
    shapes: dict[str, tuple[dict[str, Any], list[str], dict[str, Any]]] = {
        "link": ({"link_id": nullable({"type": "string", "format": "uuid"})}, [], config()),
        "header": ({}, [], config()),
        "text": ({}, [], config(text=text_of(2000))),
        "social": ({"url": url["anyOf"][0]}, ["url"], config()),
        "embed": ({"url": url["anyOf"][0]}, ["url"], config(provider=nullable({"enum": list(PROVIDERS)}))),
        "image": (
            {"url": image_url},
            ["url"],
            config(width=size, height=size, alt=text_of(300), href=url),
        ),
        "form": (
            {},
            [],
            config(
                fields=nullable(
                    {
                        "type": "array",
                        "items": {"enum": list(FORM_FIELDS)},
                        "minItems": 1,
                        "uniqueItems": True,
                        "contains": {"const": "email"},
                    }
                ),
                button_text=text_of(40),
                success_message=text_of(200),
            ),
        ),
    }
    variants = []
    for kind, (props, required, conf) in shapes.items():
        variant: dict[str, Any] = {
            "type": "object",
            "title": f"{kind.capitalize()}Block",
            **OPEN_OBJECT,
            "properties": {**common, "type": {"const": kind}, **props, "config": conf},
            "required": ["type", *required],
        }
        if kind == "link":
            variant["description"] = "A link block needs a url or the link_id of one of the team's short links."
            variant["anyOf"] = [
                {"required": ["url"], "properties": {"url": {"type": "string"}}},
                {"required": ["link_id"], "properties": {"link_id": {"type": "string"}}},
            ]
        variants.append(variant)
    if with_id:
        variants.append(
            {
                "type": "object",
                "title": "StoredBlock",
                "description": "An edit of one of the page's blocks, by id: absent fields keep their value, "
                "and the result follows the rules of its type.",
                **OPEN_OBJECT,
                "properties": {"id": {"type": "string", "format": "uuid"}},
                "required": ["id"],
            }
        )
    return variants


class BlockIn(BaseModel):
    """One block. With ``id`` it updates that block of the page (absent fields keep their value)."""

    model_config = ConfigDict(json_schema_extra=lambda schema, _: _replace(schema, _block_variants(True)))

    id: str | None = None
    type: BlockType | None = None
    label: str | None = Field(default=None, max_length=200)
    url: WebUrl | None = None
    link_id: str | None = Field(default=None, max_length=64)
    icon: str | None = Field(default=None, pattern=ICON_RE)
    sort_order: Annotated[int, Field(ge=-1_000_000, le=1_000_000), JsonIntInput] | None = None
    is_active: JsonBool | None = None
    config: dict[str, Any] | None = None

    @field_validator("config")
    @classmethod
    def _config(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(orjson.dumps(value)) > 4096:
            raise ValueError("must be at most 4 KiB of JSON")
        if value is not None:
            for key in ("width", "height"):  # JSON Schema's integer includes 300.0
                size = value.get(key)
                if isinstance(size, float) and size.is_integer():
                    value[key] = int(size)
        return value


class NewBlockIn(BlockIn):
    """A block of a page being created: every block is new, so none has an ``id``."""

    model_config = ConfigDict(json_schema_extra=lambda schema, _: _replace(schema, _block_variants(False)))


def _replace(schema: dict[str, Any], variants: list[dict[str, Any]]) -> None:
    description = schema.get("description")
    schema.clear()
    schema.update({"anyOf": variants, **({"description": description} if description else {})})


class _Storable(BaseModel):
    """Base of the top-level bodies: refuses what JSON allows but storage cannot hold (NUL, ...).

    Unknown keys are ignored (both vendors' clients send some), but they are checked like the rest.
    """

    model_config = ConfigDict(json_schema_extra=OPEN_OBJECT)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        checked = check_json(data)
        problem = number_problem(checked)
        if problem is not None:
            raise ValidationFailed.field(*problem)
        return checked


class ProfileIn(_Storable):
    """Fields shared by create and update of the blocks shape."""

    display_name: str | None = text(100)
    headline: str | None = text(300)
    bio: str | None = text(2000)
    avatar_path: ImageUrl | None = Field(default=None, description="Avatar image (https URL).")
    avatar_url: ImageUrl | None = Field(default=None, description="Alias of avatar_path.")
    theme: ThemeIn | None = None
    seo: SeoIn | None = None


class BioPageCreate(ProfileIn):
    """``POST /bio-pages``. New pages are drafts."""

    handle: str | None = text(
        200, description="Wanted handle; when it is missing, taken, reserved or not a handle, a readable one is made."
    )
    blocks: list[NewBlockIn] | None = Field(default=None, max_length=MAX_BLOCKS)
    domain: DomainName | None = Field(
        default=None, description="One of the team's bio domains (kind bio or both): its / shows this page."
    )


class BioPageUpdate(ProfileIn):
    """``PATCH /bio-pages/{id}``: every field optional; ``blocks`` replaces the set."""

    handle: str | None = Field(
        default=None,
        max_length=200,
        description="1-64 letters, digits, '-' and '_', starting with a letter or digit; not reserved, and "
        "not another page's (case-insensitively).",
        json_schema_extra={"pattern": HANDLE_UPDATE_RE},
    )
    blocks: list[BlockIn] | None = Field(default=None, max_length=MAX_BLOCKS)
    is_published: JsonBool | None = None
    domain: DomainName | None = Field(
        default=None, description="One of the team's bio domains whose / shows this page; null unbinds it."
    )


class LinkItemIn(BaseModel):
    """A link of ``page_data.links``: a ``url``, or the ``link_id`` of one of the team's short links."""

    model_config = ConfigDict(
        json_schema_extra={
            **OPEN_OBJECT,
            "anyOf": [
                {"required": ["url"], "properties": {"url": {"type": "string"}}},
                {"required": ["link_id"], "properties": {"link_id": {"type": "string"}}},
            ],
        }
    )

    label: str = text(200, default="")
    url: WebUrl | None = None
    link_id: str | None = Field(default=None, max_length=64, json_schema_extra={"format": "uuid"})


class PageDataIn(BaseModel):
    """``page_data``: ``theme`` (a palette name or theme tokens), ``avatar_url``, ``links``; other keys kept."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": JSON_VALUE_REF,
            "description": "Other keys are kept as sent: at most 50 of them and 16 KiB of JSON.",
        },
    )

    theme: Any = Field(
        default=None,
        description="A palette name, or theme tokens.",
        json_schema_extra={
            "anyOf": [
                {"type": "string", "maxLength": 32, "pattern": PALETTE_RE},
                {"$ref": "#/components/schemas/ThemeIn"},
                {"type": "null"},
            ]
        },
    )
    avatar_url: ImageUrl | None = None
    links: list[LinkItemIn] | None = Field(default=None, max_length=MAX_BLOCKS)

    @field_validator("theme", mode="before")
    @classmethod
    def _theme(cls, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = {"palette": value}
        if not isinstance(value, dict):
            raise ValueError("must be a palette name or an object of theme tokens")
        try:
            return ThemeIn.model_validate(value).tokens()
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None

    @model_validator(mode="after")
    def _extras(self) -> PageDataIn:
        extra = self.model_extra or {}
        if len(extra) > 50 or len(orjson.dumps(extra)) > 16_384:
            raise ValueError("extra keys must hold at most 50 keys and 16 KiB of JSON")
        return self


class PageDataCreate(_Storable):
    """``POST /bio/pages``."""

    title: str = text(100, 1, default=...)
    description: str | None = text(300)
    page_data: PageDataIn | None = None
    slug: str | None = text(
        200, description="Wanted slug; when it is missing, taken, reserved or not a handle, a readable one is made."
    )


class PageDataUpdate(_Storable):
    """``PATCH /bio/pages/{id}``: only the fields present are changed."""

    title: str | None = text(100, 1)
    description: str | None = text(300)
    page_data: PageDataIn | None = None
    slug: str | None = Field(
        default=None,
        max_length=200,
        description="A handle: 1-64 letters, digits, '-' and '_', starting with a letter or digit; not reserved, "
        "and not another page's.",
        json_schema_extra={"pattern": HANDLE_UPDATE_RE},
    )
    is_published: JsonBool | None = None
