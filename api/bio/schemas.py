"""Request bodies of both bio API shapes.

Pydantic checks types, sizes and formats (so a 422 names the field, e.g. ``theme.accent``);
rules that depend on the stored page (block types on update, link ownership, handles) live in
:mod:`api.bio.service`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from api.jsontext import check_json
from api.serving.themes import BUTTON_STYLES, FONTS, normalise_accent, palette_name
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


def check_url(value: str | None) -> str | None:
    """An absolute http(s) URL with a host; ``javascript:``, ``data:``, ``mailto:`` and friends fail.

    (Block links go through the edge's redirect, which only follows http(s).)
    """
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_URL or not is_http_url(value):
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


WebUrl = Annotated[str, Field(max_length=MAX_URL), AfterValidator(_web_url)]
ImageUrl = Annotated[str, Field(max_length=MAX_URL), AfterValidator(_image_url)]


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

    model_config = ConfigDict(extra="allow")

    palette: str | None = Field(default=None, max_length=32, description="light, dark, midnight, sunset, forest, ...")
    accent: str | None = Field(default=None, max_length=7, description="#rgb or #rrggbb")
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
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    image: ImageUrl | None = Field(default=None, description="https URL for og:image")
    noindex: bool | None = None


class BlockIn(BaseModel):
    """One block. With ``id`` it updates that block of the page (absent fields keep their value)."""

    id: str | None = None
    type: BlockType | None = None
    label: str | None = Field(default=None, max_length=200)
    url: WebUrl | None = None
    link_id: str | None = Field(default=None, max_length=64)
    icon: str | None = Field(default=None, pattern=ICON_RE)
    sort_order: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    is_active: bool | None = None
    config: dict[str, Any] | None = None

    @field_validator("config")
    @classmethod
    def _config(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(orjson.dumps(value)) > 4096:
            raise ValueError("must be at most 4 KiB of JSON")
        return value


class _Storable(BaseModel):
    """Base of the top-level bodies: refuses what JSON allows but storage cannot hold (NUL, ...)."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        return check_json(data)


class ProfileIn(_Storable):
    """Fields shared by create and update of the blocks shape."""

    handle: str | None = Field(default=None, max_length=200)
    display_name: str | None = Field(default=None, max_length=100)
    headline: str | None = Field(default=None, max_length=300)
    bio: str | None = Field(default=None, max_length=2000)
    avatar_path: ImageUrl | None = Field(default=None, description="Avatar image (https URL).")
    avatar_url: ImageUrl | None = Field(default=None, description="Alias of avatar_path.")
    theme: ThemeIn | None = None
    seo: SeoIn | None = None
    blocks: list[BlockIn] | None = Field(default=None, max_length=MAX_BLOCKS)


class BioPageCreate(ProfileIn):
    """``POST /bio-pages``. New pages are drafts."""


class BioPageUpdate(ProfileIn):
    """``PATCH /bio-pages/{id}``: every field optional; ``blocks`` replaces the set."""

    is_published: bool | None = None


class LinkItemIn(BaseModel):
    label: str = Field(default="", max_length=200)
    url: WebUrl | None = None
    link_id: str | None = Field(default=None, max_length=64)


class PageDataIn(BaseModel):
    """``page_data``: ``theme`` (a palette name or theme tokens), ``avatar_url``, ``links``; other keys kept."""

    model_config = ConfigDict(extra="allow")

    theme: Any = None
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

    title: str = Field(..., min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=300)
    page_data: PageDataIn | None = None
    slug: str | None = Field(default=None, max_length=200)


class PageDataUpdate(_Storable):
    """``PATCH /bio/pages/{id}``: only the fields present are changed."""

    title: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=300)
    page_data: PageDataIn | None = None
    slug: str | None = Field(default=None, max_length=200)
    is_published: bool | None = None
