"""Click and view events: what the edge appends to Redis streams and the workers roll up.

The edge buffers events and appends them in batches: one stream entry holds one batch, in the
field ``e``, one event per line. An event line is tab-separated, version first::

    1 <kind> <ts_ms> <team> <link> <page> <block> <country> <device> <os>
      <browser> <referrer> <visitor> <bot> <source> <extra>

Streams are sharded (``EVENT_SHARDS``) so that workers split the work and a Redis Cluster
spreads the keys; each shard key carries its own hash tag. Decoding is lenient: unknown
versions and malformed lines are skipped and counted, never fatal, and missing trailing fields
take defaults (Shlink's ``UrlVisited::fromPayload``).

Stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

EVENT_VERSION = "1"
EVENT_FIELD = b"e"
DEFAULT_SHARDS = 8

CLICK = "c"  # a counted redirect of a short link (also through a bio block with link_id)
VIEW = "v"  # a bio page view
BLOCK_CLICK = "b"  # a click on a bio block that points straight at a URL
FORM = "f"  # a bio form submission; ``extra`` holds the submitted fields as JSON
KINDS = frozenset({CLICK, VIEW, BLOCK_CLICK, FORM})

_CLEAN = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


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


def encode_event(event: Event) -> str:
    """One event line (no trailing newline)."""
    if event.kind not in KINDS:
        raise EventError(f"unknown event kind {event.kind!r}")
    fields = (
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
    )
    return "\t".join(f.translate(_CLEAN) for f in fields)


def encode_batch(lines: Iterable[str]) -> bytes:
    """A stream entry's payload: event lines joined by newlines."""
    return "\n".join(lines).encode()


def decode_event(line: str) -> Event | None:
    """Decode one line; ``None`` for a line of an unknown version or that is malformed."""
    parts = line.split("\t")
    if len(parts) < 4 or parts[0] != EVENT_VERSION or parts[1] not in KINDS:
        return None
    parts += [""] * (16 - len(parts))
    try:
        ts_ms = int(parts[2])
    except ValueError:
        return None
    return Event(
        kind=parts[1],
        ts_ms=ts_ms,
        team_id=parts[3],
        link_id=parts[4],
        page_id=parts[5],
        block_id=parts[6],
        country=parts[7],
        device=parts[8],
        os=parts[9],
        browser=parts[10],
        referrer=parts[11],
        visitor=parts[12],
        bot=parts[13] == "1",
        source=parts[14],
        extra=parts[15],
    )


def decode_batch(payload: bytes) -> Iterator[Event | None]:
    """Events of one stream entry, ``None`` standing in for each line that did not decode."""
    for line in payload.decode("utf-8", "replace").split("\n"):
        if line:
            yield decode_event(line)
