"""Click and view events: what the edge appends to Redis streams and the workers roll up.

The edge buffers events and appends them in batches: one stream entry holds one batch, in the
field ``e`` (:data:`EVENT_FIELD`), one event per line, with the edge's batch id in the field ``b``
(:data:`BATCH_ID_FIELD`). An event line is tab-separated, version first; the ``COL_*`` constants
name the position of each column::

    2 <kind> <ts_ms> <team> <link> <page> <block> <country> <device> <os>
      <browser> <referrer> <visitor> <bot> <source> <extra> <domain>
      <rule> <variant> <destination> <utm_source> <utm_medium> <utm_campaign>
      <region> <city> <asn> <network>

Version 2 added the columns from ``rule`` on. Lines of version 1 (which ended at ``domain``)
still decode, the new fields empty. Workers read both, so upgrade them before the edges: a
worker of version 1 skips version 2 lines as malformed.

Streams are sharded (``EVENT_SHARDS``) so that workers split the work and a Redis Cluster
spreads the keys; each shard key carries its own hash tag. Decoding is lenient: unknown
versions and malformed lines are skipped and counted, never fatal, and missing trailing fields
take defaults.

Stdlib only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from functools import lru_cache

EVENT_VERSION = "2"
VERSIONS = frozenset({"1", EVENT_VERSION})  # versions that decode
EVENT_FIELD = b"e"  # a stream entry's field holding its event lines
BATCH_ID_FIELD = b"b"  # a stream entry's field holding the edge's batch id (see redirector.emitter)
DEFAULT_SHARDS = 8

CLICK = "c"  # a counted redirect of a short link (also through a bio block with link_id)
VIEW = "v"  # a bio page view
BLOCK_CLICK = "b"  # a click on a bio block that points straight at a URL
FORM = "f"  # a bio form submission; ``extra`` holds the submitted fields as JSON
ORPHAN = "o"  # a visit to a team domain that reached no link: ``extra`` is one of ORPHAN_KINDS
KINDS = frozenset({CLICK, VIEW, BLOCK_CLICK, FORM, ORPHAN})
ORPHAN_ROOT = "root"  # the domain's / (without a bio page there)
ORPHAN_NOT_FOUND = "not_found"  # a code the domain does not have
ORPHAN_KINDS = (ORPHAN_ROOT, ORPHAN_NOT_FOUND)

# The columns of an event line, by position. Plain ints: the workers index split lines with them
# in their hot loop.
COL_VERSION = 0
COL_KIND = 1
COL_TS = 2
COL_TEAM = 3
COL_LINK = 4
COL_PAGE = 5
COL_BLOCK = 6
COL_COUNTRY = 7
COL_DEVICE = 8
COL_OS = 9
COL_BROWSER = 10
COL_REFERRER = 11
COL_VISITOR = 12
COL_BOT = 13
COL_SOURCE = 14
COL_EXTRA = 15
COL_DOMAIN = 16  # the team domain the request came in on ("": the platform's)
COL_RULE = 17  # routing rule that matched: its index; RULE_NONE if the link has rules and none did; ""
COL_VARIANT = 18  # split variant sent: "<rule index>.<variant index>" (the index alone is ambiguous); ""
COL_DESTINATION = 19  # destination_id() of the URL sent, before a forwarded query is merged in
COL_UTM_SOURCE = 20  # utm_source of the final destination (after a forwarded query), at most UTM_MAX chars
COL_UTM_MEDIUM = 21
COL_UTM_CAMPAIGN = 22
COL_REGION = 23  # "<country>|<region name>": qualified, so that equal names of two countries stay apart
COL_CITY = 24  # "<country>|<region name>|<city name>"
COL_ASN = 25  # the client's autonomous system number, decimal
COL_NETWORK = 26  # NETWORK_DATACENTER or NETWORK_OTHER when the ASN is known, else ""
COLUMNS = 27  # columns in a current line
V1_COLUMNS = 17  # columns in a version 1 line

RULE_NONE = "none"
NETWORK_DATACENTER = "datacenter"
NETWORK_OTHER = "other"
UTM_MAX = 100
PLACE_SEP = "|"  # between the parts of a qualified region or city

# Tabs and line breaks inside a field would split it: every writer of event lines replaces them.
FIELD_CLEAN = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


class EventError(ValueError):
    """An event could not be encoded."""


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    ts_ms: int
    team_id: str
    link_id: str = ""
    page_id: str = ""
    block_id: str = ""
    country: str = ""
    device: str = ""  # mobile | tablet | desktop | ""
    os: str = ""  # ios | android | windows | macos | linux | chromeos | other | ""
    browser: str = ""
    referrer: str = ""  # referrer host, without "www."
    visitor: str = ""  # salted, daily-rotating hash of IP + UA (hex); never the IP
    bot: bool = False
    source: str = ""  # direct | qr | bio | api ...
    extra: str = ""
    domain_id: str = ""
    rule: str = ""
    variant: str = ""
    destination: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    region: str = ""
    city: str = ""
    asn: str = ""
    network: str = ""


# Each field of Event and its column: the fields follow the version in column order.
_FIELD_COLUMNS = {
    "kind": COL_KIND,
    "ts_ms": COL_TS,
    "team_id": COL_TEAM,
    "link_id": COL_LINK,
    "page_id": COL_PAGE,
    "block_id": COL_BLOCK,
    "country": COL_COUNTRY,
    "device": COL_DEVICE,
    "os": COL_OS,
    "browser": COL_BROWSER,
    "referrer": COL_REFERRER,
    "visitor": COL_VISITOR,
    "bot": COL_BOT,
    "source": COL_SOURCE,
    "extra": COL_EXTRA,
    "domain_id": COL_DOMAIN,
    "rule": COL_RULE,
    "variant": COL_VARIANT,
    "destination": COL_DESTINATION,
    "utm_source": COL_UTM_SOURCE,
    "utm_medium": COL_UTM_MEDIUM,
    "utm_campaign": COL_UTM_CAMPAIGN,
    "region": COL_REGION,
    "city": COL_CITY,
    "asn": COL_ASN,
    "network": COL_NETWORK,
}
assert list(_FIELD_COLUMNS) == [f.name for f in fields(Event)], "Event's fields and the columns disagree"
assert COL_VERSION == 0 and list(_FIELD_COLUMNS.values()) == list(range(1, COLUMNS)), "columns must be 0..COLUMNS-1"

# The stats breakdowns: each dimension is an Event field, and event column (DIMENSION_FIELDS).
# The workers key their sums by a dimension's index here; the SQL writes its name. The schema's
# CHECK on stats_breakdown_hourly.dimension allows these names (a test in tests/workers holds it).
# The first DENSE dimensions are rolled up with their empty value too ("unknown", "direct");
# the others only where they have a value (most clicks have no rule, UTM or team domain, and an
# empty row per link and hour for each would double the roll-up's writes).
DIMENSIONS = (
    *("country", "device", "os", "browser", "referrer", "source"),
    *("rule", "variant", "destination", "utm_source", "utm_medium", "utm_campaign"),
    *("region", "city", "network", "domain"),
)
DENSE = 6
DIMENSION_FIELDS = {d: "domain_id" if d == "domain" else d for d in DIMENSIONS}
DIMENSION_COLUMNS = tuple(_FIELD_COLUMNS[DIMENSION_FIELDS[d]] for d in DIMENSIONS)


@lru_cache(maxsize=65536)
def destination_id(url: str) -> str:
    """A destination's stable id: 12 hex digits of its SHA-256 (PostgreSQL computes the same,
    ``left(encode(sha256(convert_to(url, 'UTF8')), 'hex'), 12)``)."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def event_columns(event: Event) -> list[str]:
    """The columns of ``event`` in order (``COL_VERSION`` first), not yet cleaned of separators."""
    return [
        EVENT_VERSION,
        event.kind,
        str(event.ts_ms),
        event.team_id,
        event.link_id,
        event.page_id,
        event.block_id,
        event.country,
        event.device,
        event.os,
        event.browser,
        event.referrer,
        event.visitor,
        "1" if event.bot else "0",
        event.source,
        event.extra,
        event.domain_id,
        event.rule,
        event.variant,
        event.destination,
        event.utm_source,
        event.utm_medium,
        event.utm_campaign,
        event.region,
        event.city,
        event.asn,
        event.network,
    ]


def encode_event(event: Event) -> str:
    """One event line (no trailing newline)."""
    if event.kind not in KINDS:
        raise EventError(f"unknown event kind {event.kind!r}")
    return "\t".join(f.translate(FIELD_CLEAN) for f in event_columns(event))


def encode_batch(lines: Iterable[str]) -> bytes:
    """A stream entry's payload: event lines joined by newlines."""
    return "\n".join(lines).encode()


def decode_event(line: str) -> Event | None:
    """Decode one line; ``None`` for a line of an unknown version or that is malformed."""
    parts = line.split("\t")
    if len(parts) <= COL_TEAM or parts[COL_VERSION] not in VERSIONS or parts[COL_KIND] not in KINDS:
        return None
    if parts[COL_VERSION] == "1":
        del parts[V1_COLUMNS:]  # version 1 had nothing past domain
    parts += [""] * (COLUMNS - len(parts))
    try:
        ts_ms = int(parts[COL_TS])
    except ValueError:
        return None
    return Event(
        kind=parts[COL_KIND],
        ts_ms=ts_ms,
        team_id=parts[COL_TEAM],
        link_id=parts[COL_LINK],
        page_id=parts[COL_PAGE],
        block_id=parts[COL_BLOCK],
        country=parts[COL_COUNTRY],
        device=parts[COL_DEVICE],
        os=parts[COL_OS],
        browser=parts[COL_BROWSER],
        referrer=parts[COL_REFERRER],
        visitor=parts[COL_VISITOR],
        bot=parts[COL_BOT] == "1",
        source=parts[COL_SOURCE],
        extra=parts[COL_EXTRA],
        domain_id=parts[COL_DOMAIN],
        rule=parts[COL_RULE],
        variant=parts[COL_VARIANT],
        destination=parts[COL_DESTINATION],
        utm_source=parts[COL_UTM_SOURCE],
        utm_medium=parts[COL_UTM_MEDIUM],
        utm_campaign=parts[COL_UTM_CAMPAIGN],
        region=parts[COL_REGION],
        city=parts[COL_CITY],
        asn=parts[COL_ASN],
        network=parts[COL_NETWORK],
    )


def decode_batch(payload: bytes) -> Iterator[Event | None]:
    """Events of one stream entry, ``None`` standing in for each line that did not decode."""
    for line in payload.decode("utf-8", "replace").split("\n"):
        if line:
            yield decode_event(line)
