"""How fresh the counters are: ``meta.complete_through``, ``meta.pending_events``, ``meta.pending_exact``.

The roll-up applies each event stream shard up to a watermark (``rollup_watermarks.last_id``,
committed with the counters). Per shard, the first stream entry after the watermark is the oldest
event Redis accepted that the counters do not hold yet; its id's millisecond part is when Redis
accepted it. So the counters hold every event Redis accepted before the earliest such time, and
``complete_through`` is that time minus 1 ms (or Redis's clock minus 1 ms, the moment of the
check, when no shard has anything pending). Entries are only removed from a stream by the trim
after their commit, so an entry after the watermark that is gone was applied: reading a watermark
that is a little stale is still sound.

The check runs *before* the counters are read, so a roll-up commit in between only makes the
counters fresher than claimed, never staler.

Cost: one small PostgreSQL query and one pipelined round trip to Redis: one ``EVAL`` per shard,
each on that shard's stream key only (its own hash tag, so it works on a Redis Cluster). The
script reads at most :data:`COUNT_CAP` entries after the watermark and returns counts, not event
data. ``pending_events`` is the number of event lines in those entries: exact while no shard has
more than :data:`COUNT_CAP` entries pending (the steady state, about a second behind), a lower
bound otherwise, which ``pending_exact: false`` says.

When Redis does not answer (within :data:`REDIS_TIMEOUT`), the three fields are ``null`` and the
stats response is served as usual.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from redirector.events import DEFAULT_SHARDS, EVENT_FIELD
from redirector.keys import event_stream_key

log = logging.getLogger("linkedge.api")

INITIAL_ID = "0-0"  # the watermark of a shard never applied (as workers.queries has it)
COUNT_CAP = 64  # stream entries read per shard, at most, to count pending events
REDIS_TIMEOUT = 1.0  # seconds; past it the freshness fields are null
_FIELD = EVENT_FIELD.decode()

# KEYS[1]: a shard's stream; ARGV[1]: its watermark; ARGV[2]: the entry cap; ARGV[3]: the event field.
# Returns {first pending id or "", entries read, event lines in them, 1 if more entries follow, now ms}.
# Lines are counted as workers/aggregate decode them: non-empty segments between newlines.
_SCRIPT = """
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local events = 0
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for j = 1, #fields, 2 do
    if fields[j] == ARGV[3] then
      local p, start, len = fields[j + 1], 1, #fields[j + 1]
      while start <= len do
        local stop = string.find(p, '\\n', start, true)
        if stop == nil then
          events = events + 1
          break
        end
        if stop > start then
          events = events + 1
        end
        start = stop + 1
      end
    end
  end
end
local first, more = '', 0
if #entries > 0 then
  first = entries[1][1]
  if #entries >= tonumber(ARGV[2]) then
    local after = redis.call('XRANGE', KEYS[1], '(' .. entries[#entries][1], '+', 'COUNT', 1)
    if #after > 0 then
      more = 1
    end
  end
end
local t = redis.call('TIME')
return {first, #entries, events, more, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
"""


@dataclass(frozen=True)
class Freshness:
    complete_through: datetime | None
    pending_events: int | None
    pending_exact: bool | None

    def meta(self) -> dict[str, Any]:
        """The ``meta`` fields of a stats response."""
        return {
            "complete_through": rfc3339_ms(self.complete_through),
            "pending_events": self.pending_events,
            "pending_exact": self.pending_exact,
        }


UNKNOWN = Freshness(None, None, None)


def rfc3339_ms(value: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds: ``2026-03-21T10:00:00.123Z`` (stream ids are milliseconds)."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _ms(stream_id: bytes | str) -> int:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    return int(text.partition("-")[0])


def _moment(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


async def watermarks(pg: asyncpg.Pool | asyncpg.Connection, shards: int = DEFAULT_SHARDS) -> dict[int, str]:
    """Every shard's watermark: the ``EVENT_SHARDS`` shards, plus any other shard that has a row."""
    rows = await pg.fetch("SELECT shard, last_id FROM rollup_watermarks")
    marks = dict.fromkeys(range(shards), INITIAL_ID)
    marks.update({r["shard"]: r["last_id"] for r in rows})
    return marks


async def freshness(
    pg: asyncpg.Pool | asyncpg.Connection, redis: Redis, prefix: str, event_shards: int = DEFAULT_SHARDS
) -> Freshness:
    """Read before the counters. PostgreSQL errors propagate (the stats could not be read either)."""
    marks = await watermarks(pg, event_shards)
    shards = sorted(marks)
    try:
        async with asyncio.timeout(REDIS_TIMEOUT):
            async with redis.pipeline(transaction=False) as pipe:
                for s in shards:
                    pipe.eval(_SCRIPT, 1, event_stream_key(prefix, s), marks[s], str(COUNT_CAP), _FIELD)
                replies: list[list[Any]] = await pipe.execute()
    except (RedisError, OSError, TimeoutError) as e:
        log.debug("freshness unknown, Redis did not answer: %s", e)
        return UNKNOWN
    through: int | None = None
    events, exact = 0, True
    for first, _entries, lines, more, now_ms in replies:
        # Nothing pending: complete up to the check, less the millisecond an XADD may still land in.
        bound = (_ms(first) if first else int(now_ms)) - 1
        through = bound if through is None else min(through, bound)
        events += int(lines)
        exact = exact and not int(more)
    assert through is not None  # at least DEFAULT_SHARDS shards
    return Freshness(_moment(through), events, exact)
