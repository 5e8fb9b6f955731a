"""User-Agent classification: device class, OS, browser and bot flag, cached per UA string.

``ua-parser`` does the hard part; the result is folded into the small vocabularies of
:mod:`redirector.events` and :mod:`redirector.rules`. Real traffic repeats a few thousand UA
strings, so an LRU cache in front makes this a dict lookup on the hot path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import ua_parser

from redirector.events import COL_BROWSER, COL_DEVICE, COL_OS

# ``Agent.tsv`` is the span of an event line from COL_DEVICE to COL_BROWSER, ready to paste in.
assert (COL_OS, COL_BROWSER) == (COL_DEVICE + 1, COL_DEVICE + 2), "Agent.tsv needs the three columns side by side"

UA_MAX = 512  # longer strings are cut before caching, so a hostile UA cannot blow up the cache key

_OS = {
    "iOS": "ios",
    "iPadOS": "ios",
    "Android": "android",
    "Windows": "windows",
    "Windows Phone": "windows",
    "Mac OS X": "macos",
    "macOS": "macos",
    "Linux": "linux",
    "Ubuntu": "linux",
    "Fedora": "linux",
    "Debian": "linux",
    "Chrome OS": "chromeos",
    "Chromecast": "linux",
}
_BROWSERS = {
    "Chrome": "chrome",
    "Chrome Mobile": "chrome",
    "Chrome Mobile iOS": "chrome",
    "Chrome Mobile WebView": "chrome",
    "Chromium": "chrome",
    "HeadlessChrome": "chrome",
    "Firefox": "firefox",
    "Firefox Mobile": "firefox",
    "Firefox iOS": "firefox",
    "Safari": "safari",
    "Mobile Safari": "safari",
    "Mobile Safari UI/WKWebView": "safari",
    "Edge": "edge",
    "Edge Mobile": "edge",
    "Opera": "opera",
    "Opera Mobile": "opera",
    "Opera Mini": "opera",
    "Samsung Internet": "samsung",
    "IE": "ie",
    "IE Mobile": "ie",
    "Brave": "brave",
    "Yandex Browser": "yandex",
    "UC Browser": "uc",
}
# Link checkers, previewers and scripts that ua-parser does not call "Spider". "cubot" is a phone brand.
_BOT = re.compile(
    r"(?<!cu)bot|crawl|spider|slurp|preview|curl/|wget|python-|httpx|aiohttp|go-http-client|java/|okhttp"
    r"|libwww|httpclient|scrapy|axios|node-fetch|headless|facebookexternalhit|embedly|whatsapp|monitor"
    r"|lighthouse|ahrefs|semrush|validator|feedfetcher|mediapartners|bitlybot|linkcheck|http_request",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Agent:
    """What the edge needs from a User-Agent."""

    device: str  # mobile | tablet | desktop | ""
    os: str  # ios | android | windows | macos | linux | chromeos | other | ""
    browser: str  # one of redirector.rules.BROWSERS, or ""
    bot: bool
    devices: frozenset[str]  # the OS and the device class together, as rule conditions see them
    tsv: str  # "device\tos\tbrowser": the event columns COL_DEVICE..COL_BROWSER


UNKNOWN = Agent("", "", "", True, frozenset(), "\t\t")


def parse_agent(ua: str) -> Agent:
    """Classify a User-Agent header (cut to :data:`UA_MAX` characters, then cached)."""
    return _parse(ua[:UA_MAX])


@lru_cache(maxsize=8192)
def _parse(ua: str) -> Agent:
    if not ua.strip():
        return UNKNOWN  # no browser sends an empty User-Agent
    result = ua_parser.parse(ua)
    ua_family = result.user_agent.family if result.user_agent else "Other"
    os_family = result.os.family if result.os else "Other"
    device = result.device
    bot = (device is not None and device.family == "Spider") or _BOT.search(ua) is not None
    os = _OS.get(os_family, "other" if os_family != "Other" else "")
    browser = _BROWSERS.get(ua_family, "other" if ua_family != "Other" else "")
    form = _form_factor(ua, os, device.family if device else "", device.brand or "" if device else "")
    if bot and form == "desktop" and not os:
        form = ""
    devices = frozenset(x for x in (os, form) if x and x != "other")
    return Agent(form, os, browser, bot, devices, f"{form}\t{os}\t{browser}")


def _form_factor(ua: str, os: str, family: str, brand: str) -> str:
    if os == "ios":
        return "tablet" if family.startswith("iPad") else "mobile"
    if "Tablet" in brand or "Tablet" in family or "Kindle" in family or "iPad" in ua:
        return "tablet"
    if os == "android":
        # Android phones say "Mobile"; tablets leave it out (Google's own convention).
        return "mobile" if "Mobile" in ua else "tablet"
    if "Mobi" in ua or "Windows Phone" in ua:
        return "mobile"
    return "desktop"
