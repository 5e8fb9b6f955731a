"""Render a bio page to a complete HTML document at write time (Jinja2, autoescaped).

The page is self-contained: CSS inline in one ``<style>``, icons as inline SVG, no scripts, no
fonts or assets from anywhere. The only requests it can cause are the user's own https images
and iframes of allowlisted players. Every block link points at the edge (``/@{handle}/b/{id}``),
which counts the click and redirects; forms post to ``/@{handle}/f/{id}``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from api.serving import icons
from api.serving.config import ServingConfig
from api.serving.embeds import embed_for
from api.serving.themes import Theme, resolve
from kit.postgres import Row

DEFAULT_IMAGE_SIZE = (800, 600)
FORM_INPUTS = {
    "email": {"type": "email", "label": "Email", "placeholder": "you@example.com", "autocomplete": "email"},
    "name": {"type": "text", "label": "Name", "placeholder": "Your name", "autocomplete": "name"},
    "message": {"type": "textarea", "label": "Message", "placeholder": "Your message", "autocomplete": "off"},
}


@dataclass
class Rendered:
    """The document plus what the edge needs to route the page's clicks and forms."""

    html: bytes
    blocks: dict[str, str] = field(default_factory=dict)  # block id -> destination URL
    block_links: dict[str, str] = field(default_factory=dict)  # block id -> short code
    forms: list[str] = field(default_factory=list)

    @property
    def etag(self) -> str:
        return hashlib.blake2b(self.html, digest_size=12).hexdigest()


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("api.serving", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _host(url: str) -> str:
    return (urlsplit(url).hostname or url).removeprefix("www.")


def css_variables(theme: Theme) -> Markup:
    """CSS custom properties; every value comes from the theme tables or a regex-checked accent."""
    p = theme.palette
    card_radius = {"pill": "22px", "square": "0"}.get(theme.button_style, "16px")
    values = {
        "--bg": p.bg,
        "--bg2": p.bg2,
        "--fg": p.fg,
        "--muted": p.muted,
        "--card": p.card,
        "--card-fg": p.card_fg,
        "--border": p.border,
        "--accent": theme.accent,
        "--accent-fg": theme.accent_fg,
        "--radius": theme.radius,
        "--card-radius": card_radius,
        "--font": theme.font,
    }
    return Markup(";".join(f"{k}:{v}" for k, v in values.items()))


def _items(handle: str, blocks: Sequence[Row], out: Rendered) -> list[dict[str, Any]]:
    """Template items for the active blocks, in order; consecutive social blocks share one row."""
    items: list[dict[str, Any]] = []
    for b in blocks:
        if not b["is_active"]:
            continue
        bid, kind, label, url = str(b["id"]), b["type"], b["label"], b["url"]
        config: Mapping[str, Any] = b["config"] or {}
        href = f"/@{handle}/b/{bid}"
        if kind == "link":
            if b["link_id"] and b.get("link_ref"):
                out.block_links[bid] = b["link_ref"]
                text = label or b.get("link_title") or _host(b.get("link_destination") or "") or "Link"
            elif url:
                out.blocks[bid] = url
                text = label or _host(url)
            else:
                continue  # its short link was deleted: nothing to go to
            icon = icons.svg(icons.icon_name(b["icon"], None), 20) if b["icon"] else None
            items.append({"kind": "link", "id": bid, "href": href, "label": text, "icon": icon})
        elif kind == "header" and label:
            items.append({"kind": "header", "id": bid, "label": label})
        elif kind == "text" and (label or config.get("text")):
            body = config.get("text") or label
            items.append({"kind": "text", "id": bid, "title": label if config.get("text") else "", "body": body})
        elif kind == "social" and url:
            out.blocks[bid] = url
            name = icons.icon_name(b["icon"], url)
            social = {"id": bid, "href": href, "label": label or icons.LABELS[name], "icon": icons.svg(name)}
            if items and items[-1]["kind"] == "socials":
                items[-1]["links"].append(social)
            else:
                items.append({"kind": "socials", "id": bid, "links": [social]})
        elif kind == "embed" and url:
            out.blocks[bid] = url
            player = embed_for(url, config.get("provider"))
            if player is None:
                items.append({"kind": "link", "id": bid, "href": href, "label": label or _host(url), "icon": None})
            else:
                title = label or player.provider.capitalize()
                items.append({"kind": "embed", "id": bid, "player": player, "title": title, "label": label})
        elif kind == "image" and url:
            width, height = config.get("width"), config.get("height")
            if not (isinstance(width, int) and isinstance(height, int)):
                width, height = DEFAULT_IMAGE_SIZE
            image = {"kind": "image", "id": bid, "src": url, "width": width, "height": height}
            image.update(alt=config.get("alt") or label, caption=label, href=None)
            if config.get("href"):
                out.blocks[bid] = config["href"]
                image["href"] = href
            items.append(image)
        elif kind == "form":
            out.forms.append(bid)
            names = config.get("fields") or ["email"]
            items.append(
                {
                    "kind": "form",
                    "id": bid,
                    "action": f"/@{handle}/f/{bid}",
                    "label": label,
                    "inputs": [{"name": n, **FORM_INPUTS[n]} for n in names if n in FORM_INPUTS],
                    "button": config.get("button_text") or "Subscribe",
                }
            )
    return items


def render_page(settings: ServingConfig, page: Row, blocks: Sequence[Row]) -> Rendered:
    """The full public document of ``page`` with its ``blocks`` (ordered), and its routing maps."""
    handle = page["handle"]
    theme = resolve(dict(page["theme"] or {}))
    seo: Mapping[str, Any] = page["seo"] or {}
    out = Rendered(html=b"")
    items = _items(handle, blocks, out)
    name = page["display_name"] or f"@{handle}"
    context = {
        "lang": "en",
        "handle": handle,
        "name": name,
        "initial": (page["display_name"] or handle)[:1].upper(),
        "headline": page["headline"],
        "bio": page["bio"],
        "avatar": page["avatar_url"],
        "theme": theme,
        "css_vars": css_variables(theme),
        "title": seo.get("title") or name,
        "description": seo.get("description") or page["headline"] or (page["bio"] or "")[:200],
        "og_image": seo.get("image") or page["avatar_url"],
        "noindex": bool(seo.get("noindex")),
        "canonical": settings.page_url(page),
        "items": items,
    }
    out.html = environment().get_template("page.html.j2").render(context).encode()
    return out
