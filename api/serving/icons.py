"""Inline SVG icons for social blocks (stroke icons on a 24×24 grid, in the style of Feather).

Inline, so a page makes no request for them; the markup is ours, never user input.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from markupsafe import Markup

_PATHS: dict[str, str] = {
    "instagram": '<rect x="2.5" y="2.5" width="19" height="19" rx="5.5"/><circle cx="12" cy="12" r="4.2"/>'
    '<circle cx="17.4" cy="6.6" r=".6" fill="currentColor"/>',
    "x": '<path d="M4 4h4.6L20 20h-4.6z"/><path d="M4.2 19.8 10.6 13M13.4 11 19.8 4.2"/>',
    "github": '<path d="M9 19c-5 1.5-5-2.5-7-3m14 6v-3.87a3.37 3.37 0 0 0-.94-2.61c3.14-.35 6.44-1.54 6.44-7A5.44 '
    "5.44 0 0 0 20 4.77 5.07 5.07 0 0 0 19.91 1S18.73.65 16 2.48a13.38 13.38 0 0 0-7 0C6.27.65 5.09 1 5.09 1A5.07 "
    '5.07 0 0 0 5 4.77a5.44 5.44 0 0 0-1.5 3.78c0 5.42 3.3 6.61 6.44 7A3.37 3.37 0 0 0 9 18.13V22"/>',
    "youtube": '<path d="M22.54 6.42a2.78 2.78 0 0 0-1.94-2C18.88 4 12 4 12 4s-6.88 0-8.6.46a2.78 2.78 0 0 0-1.94 2A29 '
    "29 0 0 0 1 11.75a29 29 0 0 0 .46 5.33A2.78 2.78 0 0 0 3.4 19c1.72.46 8.6.46 8.6.46s6.88 0 8.6-.46a2.78 2.78 0 0 "
    '0 1.94-2 29 29 0 0 0 .46-5.25 29 29 0 0 0-.46-5.33z"/><path d="M9.75 15.02 15.5 11.75 9.75 8.48z"/>',
    "tiktok": '<path d="M15.5 3c.4 2.6 2 4.2 4.5 4.4v3.3c-1.7 0-3.2-.5-4.5-1.4V15a6 6 0 1 1-6-6v3.3a2.7 2.7 0 1 0 2.7 '
    '2.7V3z"/>',
    "linkedin": '<path d="M16 8a6 6 0 0 1 6 6v7h-4v-7a2 2 0 0 0-4 0v7h-4v-7a6 6 0 0 1 6-6z"/>'
    '<rect x="2" y="9" width="4" height="12"/><circle cx="4" cy="4" r="2"/>',
    "facebook": '<path d="M18 2h-3a5 5 0 0 0-5 5v3H7v4h3v8h4v-8h3l1-4h-4V7a1 1 0 0 1 1-1h3z"/>',
    "email": '<rect x="2" y="4" width="20" height="16" rx="2.5"/><path d="m22 7-10 6.5L2 7"/>',
    "website": '<circle cx="12" cy="12" r="10"/><path d="M2 12h20"/>'
    '<path d="M12 2a15.3 15.3 0 0 1 4 10 15.3 15.3 0 0 1-4 10 15.3 15.3 0 0 1-4-10 15.3 15.3 0 0 1 4-10z"/>',
}
ALIASES = {"twitter": "x", "mail": "email", "globe": "website", "web": "website", "link": "website", "fb": "facebook"}
LABELS = {
    "instagram": "Instagram",
    "x": "X",
    "github": "GitHub",
    "youtube": "YouTube",
    "tiktok": "TikTok",
    "linkedin": "LinkedIn",
    "facebook": "Facebook",
    "email": "Email",
    "website": "Website",
}
_HOSTS = {
    "instagram.com": "instagram",
    "twitter.com": "x",
    "x.com": "x",
    "github.com": "github",
    "youtube.com": "youtube",
    "youtu.be": "youtube",
    "tiktok.com": "tiktok",
    "linkedin.com": "linkedin",
    "facebook.com": "facebook",
    "fb.com": "facebook",
}


def icon_name(icon: str | None, url: str | None) -> str:
    """The icon to draw: the block's own ``icon`` when known, else guessed from the URL, else ``website``."""
    if icon:
        name = ALIASES.get(icon.lower(), icon.lower())
        if name in _PATHS:
            return name
    if url:
        host = (urlsplit(url).hostname or "").lower()
        for suffix, name in _HOSTS.items():
            if host == suffix or host.endswith("." + suffix):
                return name
    return "website"


def svg(name: str, size: int = 22) -> Markup:
    """The icon as inline SVG markup (decorative: the link carries the accessible name)."""
    paths = _PATHS.get(name, _PATHS["website"])
    return Markup(
        f'<svg viewBox="0 0 24 24" width="{size}" height="{size}" fill="none" stroke="currentColor" '
        f'stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">'
        f"{paths}</svg>"
    )
