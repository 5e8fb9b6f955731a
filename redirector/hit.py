"""One request's facts, derived from the ASGI scope once and only as far as they are needed.

The headers are turned into a dict in one C-level call; the User-Agent, client IP, country,
visitor hash and referrer are computed on first use and kept for the rest of the request, so
rules, the event line and the split cookie share them.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import parse_qsl

from starlette.types import Scope, Send

from redirector.edge import Edge
from redirector.events import (
    COL_ASN,
    COL_BLOCK,
    COL_BOT,
    COL_BROWSER,
    COL_CITY,
    COL_COUNTRY,
    COL_DESTINATION,
    COL_DEVICE,
    COL_DOMAIN,
    COL_EXTRA,
    COL_KIND,
    COL_LINK,
    COL_NETWORK,
    COL_OS,
    COL_PAGE,
    COL_REFERRER,
    COL_REGION,
    COL_RULE,
    COL_SOURCE,
    COL_TEAM,
    COL_TS,
    COL_UTM_CAMPAIGN,
    COL_UTM_MEDIUM,
    COL_UTM_SOURCE,
    COL_VARIANT,
    COL_VERSION,
    COL_VISITOR,
    COLUMNS,
    EVENT_VERSION,
    FIELD_CLEAN,
    UTM_MAX,
)
from redirector.geo import clean_country
from redirector.rules import Facts, IPAddress, parse_accept_language, referrer_host
from redirector.ua import Agent
from redirector.views import send_error, send_response

# The columns in the order the f-string of :meth:`Hit.emit` writes them (its ``ids`` are TEAM..BLOCK,
# the agent's ``tsv`` DEVICE..BROWSER, ``utm`` the three UTM columns, the geo ``place``
# REGION..NETWORK). ``test_hit_line_fills_every_named_column`` decodes a line.
_EMIT_ORDER = (
    *(COL_VERSION, COL_KIND, COL_TS, COL_TEAM, COL_LINK, COL_PAGE, COL_BLOCK, COL_COUNTRY),
    *(COL_DEVICE, COL_OS, COL_BROWSER, COL_REFERRER, COL_VISITOR, COL_BOT, COL_SOURCE, COL_EXTRA, COL_DOMAIN),
    *(COL_RULE, COL_VARIANT, COL_DESTINATION, COL_UTM_SOURCE, COL_UTM_MEDIUM, COL_UTM_CAMPAIGN),
    *(COL_REGION, COL_CITY, COL_ASN, COL_NETWORK),
)
assert _EMIT_ORDER == tuple(range(COLUMNS)), "Hit.emit's columns are out of order"
_ID_TABS = COL_BLOCK - COL_TEAM  # separators inside ``ids``


NO_UTM = "\t\t"  # the three UTM columns, empty
_UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")


@lru_cache(maxsize=16384)
def utm_columns(url: str) -> str:
    """The UTM source, medium and campaign of a destination URL, as the event line's three
    tab-joined columns (each cleaned and cut to UTM_MAX characters)."""
    if "utm_" not in url:
        return NO_UTM
    query = url.partition("#")[0].partition("?")[2]
    found = dict.fromkeys(_UTM_KEYS, "")
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in found and not found[key]:
            found[key] = value.translate(FIELD_CLEAN).strip()[:UTM_MAX]
    return "\t".join(found.values())


# Visitors repeat their Accept-Language and IP across clicks: parse each once.
@lru_cache(maxsize=4096)
def _languages(header: str) -> frozenset[str]:
    return parse_accept_language(header[:512])


@lru_cache(maxsize=16384)
def _address(ip: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(ip) if ip else None
    except ValueError:
        return None


class Hit:
    """Lazily derived facts about one request."""

    __slots__ = (
        "edge",
        "scope",
        "send",
        "headers",
        "now",
        "_agent",
        "_ip",
        "_country",
        "_visitor",
        "_referrer",
        "_query",
    )

    def __init__(self, edge: Edge, scope: Scope, send: Send) -> None:
        self.edge = edge
        self.scope = scope
        self.send = send
        # ASGI header names are lower-case bytes; a repeated header keeps its last value.
        self.headers: dict[bytes, bytes] = dict(scope["headers"])
        self.now = time.time()
        self._agent: Agent | None = None
        self._ip: str | None = None
        self._country: str | None = None
        self._visitor: str | None = None
        self._referrer: str | None = None
        self._query: dict[str, str] | None = None

    async def respond(self, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes = b"") -> None:
        """Send the response and count it."""
        self.edge.metrics.count(status)
        await send_response(self.send, status, headers, body)

    async def fail(
        self,
        status: int,
        message: str | None = None,
        extra: Sequence[tuple[bytes, bytes]] = (),
        title: str | None = None,
    ) -> None:
        """An error page (HTML, or JSON for ``Accept: application/json``), counted."""
        self.edge.metrics.count(status)
        await send_error(self.send, status, self.accept, message, extra, title)

    def header(self, name: bytes) -> str:
        return self.headers.get(name, b"").decode("latin-1")

    @property
    def accept(self) -> bytes:
        return self.headers.get(b"accept", b"")

    @property
    def prefetch(self) -> bool:
        """Speculative loads (``Sec-Purpose: prefetch``, ``Purpose: prefetch``, ``X-Moz: prefetch``)."""
        h = self.headers
        if b"sec-purpose" not in h and b"purpose" not in h and b"x-moz" not in h:
            return False  # the usual case, in dict lookups: ``bytes in bytes`` costs 10x more in CPython
        return any(h.get(name, b"").find(b"prefetch") != -1 for name in (b"sec-purpose", b"purpose", b"x-moz"))

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._agent = self.edge.agent(self.headers.get(b"user-agent", b""))
        return self._agent

    @property
    def ip(self) -> str:
        if self._ip is None:
            client = self.scope.get("client")
            peer = client[0] if client else ""
            forwarded = self.headers.get(b"x-forwarded-for")
            self._ip = self.edge.client_ip(peer, forwarded.decode("latin-1")) if forwarded else peer
        return self._ip

    @property
    def country(self) -> str:
        if self._country is None:
            edge = self.edge
            # The country header is believed only from a trusted proxy, like X-Forwarded-For.
            value = self.headers.get(edge.country_header) if edge.country_header and self.from_proxy() else None
            country = clean_country(value.decode("latin-1")) if value else ""
            self._country = country or edge.geo.country(self.ip)
        return self._country

    def from_proxy(self) -> bool:
        """The peer is one of ``TRUSTED_PROXIES``."""
        client = self.scope.get("client")
        return self.edge.trusted_peer(client[0] if client else "")

    @property
    def visitor(self) -> str:
        if self._visitor is None:
            self._visitor = self.edge.hasher(self.ip, self.headers.get(b"user-agent", b""), self.now)
        return self._visitor

    @property
    def referrer(self) -> str:
        if self._referrer is None:
            referer = self.headers.get(b"referer")
            self._referrer = (referrer_host(referer.decode("latin-1")) or "") if referer else ""
        return self._referrer

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            qs = self.scope.get("query_string", b"")
            self._query = dict(parse_qsl(qs.decode("latin-1"), keep_blank_values=True)) if qs else {}
        return self._query

    @property
    def source(self) -> str:
        qs = self.scope.get("query_string", b"")
        return "qr" if qs and b"qr=1" in qs and self.query.get("qr") == "1" else "direct"

    def facts(self, bucket: int) -> Facts:
        """Rule facts; built only for links that have rules."""
        agent = self.agent
        return Facts(
            country=self.country or None,
            devices=agent.devices,
            browser=agent.browser or None,
            languages=_languages(self.header(b"accept-language")),
            query=self.query,
            ip=_address(self.ip),
            referrer_host=self.referrer or None,
            now=self.now,
            bucket=bucket,
        )

    def emit(
        self,
        kind: str,
        team_id: str,
        *,
        link_id: str = "",
        page_id: str = "",
        block_id: str = "",
        source: str = "",
        extra: str = "",
        domain_id: str = "",
        rule: str = "",
        variant: str = "",
        destination: str = "",
        utm: str = NO_UTM,
    ) -> None:
        """Buffer one event line, byte for byte what :func:`redirector.events.encode_event` makes.

        Built with one f-string: the derived fields come from closed vocabularies, hex digests,
        cleaned country codes, parsed host names and pre-cleaned column groups (``utm``, from
        :func:`utm_columns`, and the geo place), so only the ids and ``extra`` can hold a
        separator and need cleaning. ``test_event_lines_match_the_contract_encoder`` holds the two equal.
        """
        agent = self.agent
        ids = f"{team_id}\t{link_id}\t{page_id}\t{block_id}"
        if ids.count("\t") != _ID_TABS or "\n" in ids or "\r" in ids:
            ids = "\t".join(v.translate(FIELD_CLEAN) for v in (team_id, link_id, page_id, block_id))
        line = (
            f"{EVENT_VERSION}\t{kind}\t{int(self.now * 1000)}\t{ids}\t{self.country}\t{agent.tsv}\t"
            f"{self.referrer}\t{self.visitor}\t{'1' if agent.bot else '0'}\t{source or self.source}\t"
            f"{extra.translate(FIELD_CLEAN) if extra else ''}\t{domain_id}\t{rule}\t{variant}\t{destination}\t"
            f"{utm}\t{self.edge.geo.place(self.ip)}"
        )
        self.edge.emitter.emit(line)
