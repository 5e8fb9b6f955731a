"""The two public shapes of one stored page, in and out.

Mapping: ``slug`` = ``handle``, ``title`` = ``display_name``, ``description`` = ``headline``,
``page_data.links`` = the active ``link`` blocks, ``page_data.theme`` = ``theme.palette``,
``page_data.avatar_url`` = the avatar; other ``page_data`` keys are kept as they were sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.bio.schemas import BioPageCreate, BioPageUpdate, BlockIn, PageDataCreate, PageDataUpdate
from api.bio.service import Change, PageView
from api.envelope import rfc3339
from api.serving.themes import resolve
from api.settings import Settings
from kit.postgres import Row


def theme_resource(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Stored tokens with the defaults filled in, so clients see what the page uses."""
    theme = resolve(dict(stored))
    font = stored.get("font") if stored.get("font") else "system"
    return {**stored, "palette": theme.palette_name, "accent": theme.accent, "button_style": theme.button_style,
            "font": font}  # fmt: skip


def block_resource(block: Row) -> dict[str, Any]:
    return {
        "id": str(block["id"]),
        "type": block["type"],
        "label": block["label"],
        "url": block["url"],
        "link_id": str(block["link_id"]) if block["link_id"] else None,
        "icon": block["icon"],
        "sort_order": block["sort_order"],
        "is_active": block["is_active"],
        "config": block["config"],
        "created_at": rfc3339(block["created_at"]),
        "updated_at": rfc3339(block["updated_at"]),
    }


def bio_page_resource(
    view: PageView, settings: Settings, *, blocks: bool = True, blocks_count: int | None = None
) -> dict[str, Any]:
    """The blocks shape's BioPageResource."""
    page = view.page
    out: dict[str, Any] = {
        "id": str(page["id"]),
        "handle": page["handle"],
        "display_name": page["display_name"],
        "headline": page["headline"],
        "bio": page["bio"],
        "avatar_path": page["avatar_url"],
        "avatar_url": page["avatar_url"],
        "theme": theme_resource(page["theme"]),
        "seo": page["seo"],
        "is_published": page["is_published"],
        "published_at": rfc3339(page["published_at"]),
        "url": settings.serving.page_url(page),
        "html_url": settings.serving.page_url(page),
        "domain": page["domain_hostname"],
        "view_count": view.views,
        "click_count": view.clicks,
        "created_at": rfc3339(page["created_at"]),
        "updated_at": rfc3339(page["updated_at"]),
    }
    if blocks:
        out["blocks"] = [block_resource(b) for b in view.blocks]
        out["blocks_count"] = len(view.blocks)
    elif blocks_count is not None:
        out["blocks_count"] = blocks_count
    return out


def _link_url(block: Row, settings: Settings) -> str | None:
    if block["url"]:
        url: str = block["url"]
        return url
    if block["link_code"]:
        return settings.serving.short_url(block["link_code"], block["link_hostname"])
    return None


def page_data_resource(view: PageView, settings: Settings) -> dict[str, Any]:
    """The page-data shape (``/bio/pages``)."""
    page = view.page
    links = [
        {"label": b["label"], "url": _link_url(b, settings)}
        for b in view.blocks
        if b["type"] == "link" and b["is_active"]
    ]
    page_data = {
        "theme": resolve(page["theme"]).palette_name,
        "avatar_url": page["avatar_url"],
        "links": links,
        **page["page_data"],
    }
    return {
        "id": str(page["id"]),
        "title": page["display_name"],
        "description": page["headline"],
        "slug": page["handle"],
        "page_data": page_data,
        "is_published": page["is_published"],
        "published_at": rfc3339(page["published_at"]),
        "view_count": view.views,
        "click_count": view.clicks,
        "html_url": settings.serving.page_url(page),
        "created_at": rfc3339(page["created_at"]),
        "updated_at": rfc3339(page["updated_at"]),
    }


def change_from_blocks_shape(body: BioPageCreate | BioPageUpdate) -> Change:
    given = body.model_fields_set
    profile: dict[str, Any] = {}
    for name in ("display_name", "headline", "bio"):
        if name in given:
            profile[name] = getattr(body, name) or ""
    if "avatar_url" in given or "avatar_path" in given:
        profile["avatar_url"] = body.avatar_url if "avatar_url" in given else body.avatar_path
    if "theme" in given:
        profile["theme"] = body.theme.tokens() if body.theme else {}
    if "seo" in given:
        profile["seo"] = body.seo.model_dump(exclude_none=True) if body.seo else {}
    blocks: list[BlockIn] | None = None if body.blocks is None else [*body.blocks]
    return Change(
        profile=profile,
        handle=body.handle,
        handle_field="handle",
        blocks=blocks,
        is_published=body.is_published if isinstance(body, BioPageUpdate) else None,
        domain=body.domain,
        domain_given="domain" in given,
    )


def change_from_page_data_shape(body: PageDataCreate | PageDataUpdate) -> Change:
    given = body.model_fields_set
    profile: dict[str, Any] = {}
    if "title" in given:
        profile["display_name"] = body.title or ""
    if "description" in given:
        profile["headline"] = body.description or ""
    change = Change(profile=profile, handle=body.slug, handle_field="slug")
    if isinstance(body, PageDataUpdate):
        change.is_published = body.is_published
    data = body.page_data
    if data is not None:
        data_given = data.model_fields_set
        if "theme" in data_given:
            profile["theme"] = data.theme or {}
        if "avatar_url" in data_given:
            profile["avatar_url"] = data.avatar_url
        if "links" in data_given:
            change.links = data.links or []
        if data.model_extra:
            profile["page_data"] = dict(data.model_extra)
    return change
