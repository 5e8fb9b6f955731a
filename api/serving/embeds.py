"""Embeds from an allowlist only: a URL becomes a player iframe of a known provider, or nothing.

The iframe's ``src`` is rebuilt from ids matched by strict patterns, never copied from user input,
so an embed can only ever load one of the player hosts of :data:`redirector.cache.FRAME_HOSTS`
(which the edge's CSP allows as ``frame-src``). Anything else is shown as a plain link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from redirector.cache import FRAME_HOSTS

PROVIDERS = ("youtube", "vimeo", "spotify", "soundcloud")
_FRAME_PREFIXES = tuple(f"{host}/" for host in FRAME_HOSTS)

_YT_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_SPOTIFY = re.compile(
    r"/(?:intl-[a-z]{2}(?:-[A-Za-z]{2})?/)?(track|album|playlist|episode|show|artist)/([A-Za-z0-9]{22})"
)
_SOUNDCLOUD_PATH = re.compile(r"/[A-Za-z0-9_-]+(?:/(?:sets/)?[A-Za-z0-9_-]+)?")


@dataclass(frozen=True)
class Embed:
    provider: str
    src: str
    ratio: str | None  # CSS aspect-ratio for video players
    height: int | None  # fixed height for audio players


def _host(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.").removeprefix("m.")
    return host, parts.path.rstrip("/") or "/"


def _youtube(url: str) -> Embed | None:
    host, path = _host(url)
    video = None
    if host == "youtu.be":
        video = path.lstrip("/")
    elif host in ("youtube.com", "youtube-nocookie.com", "music.youtube.com"):
        if path == "/watch":
            video = (parse_qs(urlsplit(url).query).get("v") or [""])[0]
        else:
            m = re.fullmatch(r"/(?:embed|shorts|live|v)/([^/]+)", path)
            video = m.group(1) if m else None
    if not video or not _YT_ID.fullmatch(video):
        return None
    return Embed("youtube", f"https://www.youtube-nocookie.com/embed/{video}", "16 / 9", None)


def _vimeo(url: str) -> Embed | None:
    host, path = _host(url)
    m = None
    if host == "vimeo.com":
        m = re.fullmatch(r"/(?:channels/[A-Za-z0-9_-]+/|groups/[A-Za-z0-9_-]+/videos/)?(\d{1,12})", path)
    elif host == "player.vimeo.com":
        m = re.fullmatch(r"/video/(\d{1,12})", path)
    if not m:
        return None
    return Embed("vimeo", f"https://player.vimeo.com/video/{m.group(1)}?dnt=1", "16 / 9", None)


def _spotify(url: str) -> Embed | None:
    host, path = _host(url)
    if host != "open.spotify.com":
        return None
    m = _SPOTIFY.fullmatch(path.removeprefix("/embed"))
    if not m:
        return None
    kind, item = m.groups()
    height = 152 if kind in ("track", "episode") else 352
    return Embed("spotify", f"https://open.spotify.com/embed/{kind}/{item}", None, height)


def _soundcloud(url: str) -> Embed | None:
    host, path = _host(url)
    if host != "soundcloud.com" or not _SOUNDCLOUD_PATH.fullmatch(path):
        return None
    track = quote(f"https://soundcloud.com{path}", safe="")
    src = f"https://w.soundcloud.com/player/?url={track}&visual=false&show_comments=false"
    return Embed("soundcloud", src, None, 166 if "/sets/" not in path else 352)


_FINDERS = {"youtube": _youtube, "vimeo": _vimeo, "spotify": _spotify, "soundcloud": _soundcloud}


def embed_for(url: str | None, provider: str | None = None) -> Embed | None:
    """The player for ``url`` when it belongs to an allowlisted provider (``provider`` narrows the
    choice), else None: the block is then rendered as a plain link."""
    if not url:
        return None
    finders = [_FINDERS[provider]] if provider in _FINDERS else list(_FINDERS.values())
    for find in finders:
        found = find(url)
        if found is not None:
            # Every finder builds its src on a FRAME_HOSTS origin; this keeps it so.
            return found if found.src.startswith(_FRAME_PREFIXES) else None
    return None
