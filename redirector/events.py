"""Click and view events: what the edge appends to Redis streams and the workers roll up.

The edge buffers events and appends them in batches: one stream entry holds one batch, in the
field ``e`` (:data:`EVENT_FIELD`), one event per line, with the edge's batch id in the field ``b``
(:data:`BATCH_ID_FIELD`). An event line is tab-separated, version first; the ``COL_*`` constants
name the position of each column::

    1 <kind> <ts_ms> <team> <link> <page> <block> <country> <device> <os>
      <browser> <referrer> <visitor> <bot> <source> <extra> <domain>

Streams are sharded (``EVENT_SHARDS``) so that workers split the work and a Redis Cluster
spreads the keys; each shard key carries its own hash tag. Decoding is lenient: unknown
versions and malformed lines are skipped and counted, never fatal, and missing trailing fields
take defaults.

Stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields

EVENT_VERSION = "1"
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
COLUMNS = 17  # columns in a current line

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
}
assert list(_FIELD_COLUMNS) == [f.name for f in fields(Event)], "Event's fields and the columns disagree"
assert COL_VERSION == 0 and list(_FIELD_COLUMNS.values()) == list(range(1, COLUMNS)), "columns must be 0..COLUMNS-1"

# The stats breakdowns: each dimension is the Event field, and event column, of the same name.
# The workers key their sums by a dimension's index here; the SQL writes its name. The schema's
# CHECK on stats_breakdown_hourly.dimension allows these names (a test in tests/workers holds it).
DIMENSIONS = ("country", "device", "os", "browser", "referrer", "source")
DIMENSION_COLUMNS = tuple(_FIELD_COLUMNS[d] for d in DIMENSIONS)


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
    if len(parts) <= COL_TEAM or parts[COL_VERSION] != EVENT_VERSION or parts[COL_KIND] not in KINDS:
        return None
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
    )


def decode_batch(payload: bytes) -> Iterator[Event | None]:
    """Events of one stream entry, ``None`` standing in for each line that did not decode."""
    for line in payload.decode("utf-8", "replace").split("\n"):
        if line:
            yield decode_event(line)
