"""The serving cache's wire format: what the API writes to Redis and the edge reads.

A link record is ``b"L1"`` followed by a compact JSON object. The rules inside it
were validated and normalised by :func:`redirector.rules.parse_rules` at write time;
decoding compiles them into frozen objects once, so the hot path never parses.

Stdlib only: the API and the workers import this module without the edge's app.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from redirector.rules import Rule, compile_rules

LINK_RECORD_VERSION = b"L1"
PAGE_RECORD_VERSION = b"P1"
REDIRECT_STATUSES = frozenset({301, 302, 307, 308})
# The only origins a page record's HTML may frame: the API builds embeds on these player hosts
# only (api.serving.embeds), and the edge sends exactly these as the page CSP's ``frame-src``.
FRAME_HOSTS = (
    "https://www.youtube-nocookie.com",
    "https://player.vimeo.com",
    "https://open.spotify.com",
    "https://w.soundcloud.com",
)


class RecordError(ValueError):
    """A cache record could not be encoded or decoded."""


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """Everything the edge needs to answer ``/{code}``, and nothing else."""

    id: str
    team_id: str
    code: str
    url: str
    status: int = 302
    enabled: bool = True
    expires_at: float | None = None  # epoch seconds
    forward_query: bool = False
    max_clicks: int | None = None
    password_hash: str | None = None
    expired_url: str | None = None  # where an expired or used-up link goes (else the domain's, else 410)
    crawlable: bool = False  # False: redirects carry X-Robots-Tag: noindex
    rules: tuple[Rule, ...] = field(default=())
    raw_rules: tuple[dict[str, Any], ...] = field(default=(), repr=False, compare=False)


def encode_record(record: LinkRecord) -> bytes:
    """Encode a link record. ``raw_rules`` must already be normalised by ``parse_rules``."""
    if record.status not in REDIRECT_STATUSES:
        raise RecordError(f"redirect status {record.status} is not one of {sorted(REDIRECT_STATUSES)}")
    body: dict[str, Any] = {"i": record.id, "t": record.team_id, "c": record.code, "u": record.url}
    if record.status != 302:
        body["s"] = record.status
    if not record.enabled:
        body["e"] = 0
    if record.expires_at is not None:
        body["x"] = record.expires_at
    if record.forward_query:
        body["q"] = 1
    if record.max_clicks is not None:
        body["m"] = record.max_clicks
    if record.password_hash is not None:
        body["p"] = record.password_hash
    if record.expired_url is not None:
        body["xu"] = record.expired_url
    if record.crawlable:
        body["cr"] = 1
    if record.raw_rules:
        body["r"] = list(record.raw_rules)
    try:
        return LINK_RECORD_VERSION + json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    except (TypeError, ValueError) as e:
        raise RecordError(f"cannot encode link record {record.code!r}: {e}") from e


def decode_record(data: bytes) -> LinkRecord:
    """Decode and compile a link record; raises :class:`RecordError` on anything malformed."""
    if not data.startswith(LINK_RECORD_VERSION):
        raise RecordError(f"unknown link record version {data[:2]!r}")
    try:
        body = json.loads(data[2:])
        raw_rules = tuple(body.get("r", ()))
        return LinkRecord(
            id=body["i"],
            team_id=body["t"],
            code=body["c"],
            url=body["u"],
            status=int(body.get("s", 302)),
            enabled=bool(body.get("e", 1)),
            expires_at=body.get("x"),
            forward_query=bool(body.get("q", 0)),
            max_clicks=body.get("m"),
            password_hash=body.get("p"),
            expired_url=body.get("xu"),
            crawlable=bool(body.get("cr", 0)),
            rules=compile_rules(raw_rules),
            raw_rules=raw_rules,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RecordError(f"malformed link record: {e}") from e


@dataclass(frozen=True, slots=True)
class PageRecord:
    """A published bio page: pre-rendered HTML plus what the edge needs to count and route clicks.

    ``blocks`` maps a block id to its target: either a short code (the click goes through that
    link's record, rules and history) or an absolute URL.
    """

    id: str
    team_id: str
    handle: str
    etag: str
    html: bytes
    blocks: dict[str, str] = field(default_factory=dict)
    block_links: dict[str, str] = field(default_factory=dict)  # block id -> link ref (redirector.keys.link_key)
    forms: tuple[str, ...] = ()  # ids of form blocks that accept submissions


def encode_page(record: PageRecord) -> bytes:
    head = {
        "i": record.id,
        "t": record.team_id,
        "h": record.handle,
        "e": record.etag,
        "b": record.blocks,
        "l": record.block_links,
        "f": list(record.forms),
    }
    try:
        meta = json.dumps(head, separators=(",", ":"), sort_keys=True).encode()
    except (TypeError, ValueError) as e:
        raise RecordError(f"cannot encode page record {record.handle!r}: {e}") from e
    # The HTML follows the metadata after a newline, so it is never JSON-escaped or re-parsed.
    return PAGE_RECORD_VERSION + meta + b"\n" + record.html


def decode_page(data: bytes) -> PageRecord:
    if not data.startswith(PAGE_RECORD_VERSION):
        raise RecordError(f"unknown page record version {data[:2]!r}")
    meta, sep, html = data[2:].partition(b"\n")
    if not sep:
        raise RecordError("page record has no body")
    try:
        head = json.loads(meta)
        return PageRecord(
            id=head["i"],
            team_id=head["t"],
            handle=head["h"],
            etag=head["e"],
            html=html,
            blocks=dict(head.get("b", {})),
            block_links=dict(head.get("l", {})),
            forms=tuple(head.get("f", ())),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise RecordError(f"malformed page record: {e}") from e


DOMAIN_RECORD_VERSION = b"D1"


@dataclass(frozen=True, slots=True)
class DomainRecord:
    """A verified team domain, compiled at write time: what the edge does with each of its paths.

    The bodies of ``/robots.txt`` and the two deep-link files are rendered by the API, so the edge
    only sends bytes. ``page_handle`` is the bio page shown at ``/`` of a bio domain.
    """

    id: str
    team_id: str
    hostname: str
    links: bool = True  # serves short links
    bio: bool = False  # serves bio pages (``/@handle``, and ``page_handle`` at ``/``)
    root_url: str | None = None
    not_found_url: str | None = None
    expired_url: str | None = None
    page_handle: str | None = None
    robots: bytes = b"User-agent: *\nDisallow: /\n"
    aasa: bytes | None = None  # /.well-known/apple-app-site-association
    assetlinks: bytes | None = None  # /.well-known/assetlinks.json


def encode_domain(record: DomainRecord) -> bytes:
    body: dict[str, Any] = {"i": record.id, "t": record.team_id, "h": record.hostname, "r": record.robots.decode()}
    if not record.links:
        body["nl"] = 1
    if record.bio:
        body["b"] = 1
    optional = {
        "ru": record.root_url,
        "nf": record.not_found_url,
        "ex": record.expired_url,
        "ph": record.page_handle,
        "aa": record.aasa.decode() if record.aasa is not None else None,
        "al": record.assetlinks.decode() if record.assetlinks is not None else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    try:
        return DOMAIN_RECORD_VERSION + json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    except (TypeError, ValueError) as e:
        raise RecordError(f"cannot encode domain record {record.hostname!r}: {e}") from e


def decode_domain(data: bytes) -> DomainRecord:
    if not data.startswith(DOMAIN_RECORD_VERSION):
        raise RecordError(f"unknown domain record version {data[:2]!r}")
    try:
        body = json.loads(data[2:])
        aasa, assetlinks = body.get("aa"), body.get("al")
        return DomainRecord(
            id=body["i"],
            team_id=body["t"],
            hostname=body["h"],
            links=not body.get("nl", 0),
            bio=bool(body.get("b", 0)),
            root_url=body.get("ru"),
            not_found_url=body.get("nf"),
            expired_url=body.get("ex"),
            page_handle=body.get("ph"),
            robots=body["r"].encode(),
            aasa=aasa.encode() if aasa is not None else None,
            assetlinks=assetlinks.encode() if assetlinks is not None else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RecordError(f"malformed domain record: {e}") from e
