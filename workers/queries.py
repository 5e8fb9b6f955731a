"""The roll-up's SQL: one transaction applies a batch's sums and moves the shard watermarks.

Every statement takes whole arrays (``unnest``), so a batch costs a handful of round trips
whatever its size. Rows are written in sorted key order, and the watermark rows are locked
first, so two workers committing at once queue on the same locks in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kit.postgres import Conn
from kit.sketch import Sketch, decode_sketch, visitor_hashes
from redirector.events import DIMENSIONS
from workers.aggregate import MAX_VALUE, UUID_LEN, Batch

INITIAL_ID = "0-0"
DAY_MS = 86_400_000
_Row = tuple[str, int, int, str, int]  # a breakdown row: subject, hour ms, dimension (from 1), value, clicks
SEP = "\x1f"  # separates breakdown values; workers.aggregate strips it from event lines

_LOCK_MARKS = """
INSERT INTO rollup_watermarks AS w (shard, last_id) SELECT unnest($1::int[]), '0-0'
ON CONFLICT (shard) DO UPDATE SET updated_at = w.updated_at
RETURNING shard, last_id
"""
_MOVE_MARKS = """
UPDATE rollup_watermarks w SET last_id = u.l, updated_at = now()
FROM unnest($1::int[], $2::text[]) AS u(s, l) WHERE w.shard = u.s
"""
_RECORD_BATCHES = """
WITH added AS (
    INSERT INTO rollup_batches (batch_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING 1
)
SELECT count(*) FROM added
"""
_HOURS = """
INSERT INTO stats_hourly AS h (subject_id, bucket, team_id, clicks, views, bots)
SELECT u.s, to_timestamp(u.b / 1000), u.t, u.c, u.v, u.o
FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::bigint[], $5::bigint[], $6::bigint[]) AS u(s, b, t, c, v, o)
ON CONFLICT (subject_id, bucket) DO UPDATE
SET clicks = h.clicks + EXCLUDED.clicks, views = h.views + EXCLUDED.views, bots = h.bots + EXCLUDED.bots,
    team_id = coalesce(h.team_id, EXCLUDED.team_id)
RETURNING subject_id::text, (extract(epoch FROM bucket) * 1000)::bigint, visitors
"""
_SKETCHES = """
UPDATE stats_hourly h SET visitors = u.x
FROM unnest($1::uuid[], $2::bigint[], $3::bytea[]) AS u(s, b, x)
WHERE h.subject_id = u.s AND h.bucket = to_timestamp(u.b / 1000)
"""
# The biggest statement by far (one row per subject, hour and value), so its columns travel as
# joined text: asyncpg encodes big arrays element by element, string_to_array is one C pass.
# Values are prefixed with the separator, so a lone empty value still makes a one-element array.
# A dimension travels as its position in events.DIMENSIONS, from 1; $6 is DIMENSIONS, which names it.
_BREAKDOWNS = """
INSERT INTO stats_breakdown_hourly AS d (subject_id, bucket, dimension, value, clicks)
SELECT u.s::uuid, to_timestamp(u.b::bigint / 1000), ($6::text[])[u.d::int], u.v, u.c::bigint
FROM unnest(string_to_array($1, ','), string_to_array($2, ','), string_to_array($3, ','),
            (string_to_array($4, chr(31)))[2:], string_to_array($5, ',')) AS u(s, b, d, v, c)
ON CONFLICT (subject_id, bucket, dimension, value) DO UPDATE SET clicks = d.clicks + EXCLUDED.clicks
"""
# The same hours summed per UTC day (a day travels as days since the epoch).
_DAYS = """
INSERT INTO stats_daily AS d (subject_id, day, team_id, clicks, views, bots)
SELECT u.s, DATE '1970-01-01' + u.d, u.t, u.c, u.v, u.o
FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::bigint[], $5::bigint[], $6::bigint[]) AS u(s, d, t, c, v, o)
ON CONFLICT (subject_id, day) DO UPDATE
SET clicks = d.clicks + EXCLUDED.clicks, views = d.views + EXCLUDED.views, bots = d.bots + EXCLUDED.bots
"""
# Per team, dimension, hour and value (few rows: a team's values, not its subjects'): summed in
# Python from the breakdowns, upserted hourly and summed again per UTC day in the same statement.
# Every worker writes the same hot rows of a big team, so they go in sorted order like the rest.
_TEAM_DIMS = """
WITH u AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[])
        AS u(t, d, b, v, c, w)
),
hourly AS (
    INSERT INTO stats_team_hourly AS x (team_id, dimension, bucket, value, clicks, views)
    SELECT u.t, ($7::text[])[u.d], to_timestamp(u.b / 1000), u.v, u.c, u.w FROM u
    ON CONFLICT (team_id, dimension, bucket, value) DO UPDATE
    SET clicks = x.clicks + EXCLUDED.clicks, views = x.views + EXCLUDED.views
)
INSERT INTO stats_team_daily AS x (team_id, dimension, day, value, clicks, views)
SELECT u.t, ($7::text[])[u.d], DATE '1970-01-01' + (u.b / 86400000)::int, u.v, sum(u.c), sum(u.w) FROM u
GROUP BY u.t, u.d, 3, u.v ORDER BY u.t, u.d, 3, u.v
ON CONFLICT (team_id, dimension, day, value) DO UPDATE
SET clicks = x.clicks + EXCLUDED.clicks, views = x.views + EXCLUDED.views
"""
_TOTALS = """
INSERT INTO stats_totals AS t (subject_id, team_id, clicks, views, bots, last_at)
SELECT u.s, u.t, u.c, u.v, u.o, CASE WHEN u.l > 0 THEN to_timestamp(u.l / 1000.0) END
FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) AS u(s, t, c, v, o, l)
ON CONFLICT (subject_id) DO UPDATE
SET clicks = t.clicks + EXCLUDED.clicks, views = t.views + EXCLUDED.views, bots = t.bots + EXCLUDED.bots,
    last_at = greatest(t.last_at, EXCLUDED.last_at), team_id = coalesce(t.team_id, EXCLUDED.team_id)
"""
# Lock first, in id order: an UPDATE ... FROM join would lock links in whatever order the plan picks.
_LOCK_LINKS = "SELECT id FROM links WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"
_LINKS = """
UPDATE links l SET scan_count = l.scan_count + u.n,
    last_scan_at = greatest(l.last_scan_at, to_timestamp(u.t / 1000.0))
FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS u(id, n, t) WHERE l.id = u.id
"""
_FORMS = """
INSERT INTO form_submissions (team_id, page_id, block_id, data, visitor, created_at)
SELECT u.t, u.p, u.b, u.d, u.v, to_timestamp(u.c / 1000.0)
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::jsonb[], $5::text[], $6::bigint[]) AS u(t, p, b, d, v, c)
"""


_ORPHANS = """
INSERT INTO domain_orphan_hourly AS o (domain_id, hour, kind, visits)
SELECT u.d, to_timestamp(u.h / 1000), u.k, u.n
FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bigint[]) AS u(d, h, k, n)
WHERE EXISTS (SELECT 1 FROM domains WHERE id = u.d)  -- a domain deleted since: nothing to count
ON CONFLICT (domain_id, hour, kind) DO UPDATE SET visits = o.visits + EXCLUDED.visits
"""


async def load_watermarks(conn: Conn, shards: list[int]) -> dict[int, str]:
    """Last applied stream id of each shard (``0-0`` for a shard never applied)."""
    rows = await conn.fetch("SELECT shard, last_id FROM rollup_watermarks WHERE shard = ANY($1::int[])", shards)
    found = {r["shard"]: r["last_id"] for r in rows}
    return {s: found.get(s, INITIAL_ID) for s in shards}


class _Replay(Exception):
    """Raised inside the transaction to roll it back: some of the batch was applied already."""


async def seen_batches(conn: Conn, batch_ids: list[str]) -> set[str]:
    """Which of these edge batch ids were applied already."""
    if not batch_ids:
        return set()
    rows = await conn.fetch("SELECT batch_id FROM rollup_batches WHERE batch_id = ANY($1::text[])", batch_ids)
    return {r["batch_id"] for r in rows}


async def prune_batches(conn: Conn, older_than_s: float = 86_400, limit: int = 50_000) -> int:
    """Forget applied batch ids older than a day (a retried XADD comes long before that)."""
    status = await conn.execute(
        "DELETE FROM rollup_batches WHERE ctid = ANY(ARRAY(SELECT ctid FROM rollup_batches "
        "WHERE applied_at < now() - make_interval(secs => $1) LIMIT $2))",
        older_than_s,
        limit,
    )
    return int(status.split()[-1])


async def apply_batch(conn: Conn, expected: Mapping[int, str], new: Mapping[int, str], batch: Batch) -> bool:
    """Apply ``batch`` and move each shard's watermark from ``expected`` to ``new``, atomically.

    Returns False, having written nothing, when a watermark is not where the caller read from
    (that batch, or part of it, was applied already: by this worker before a crash, or by another
    worker that took the shard over), or when one of its edge batch ids was applied meanwhile.
    Those checks are what make a replay harmless.
    """
    try:
        async with conn.transaction():
            shards = sorted(new)
            rows = await conn.fetch(_LOCK_MARKS, shards)
            if any(expected.get(r["shard"]) != r["last_id"] for r in rows):
                raise _Replay
            if batch.batch_ids:
                ids = sorted(batch.batch_ids)
                if await conn.fetchval(_RECORD_BATCHES, ids) != len(ids):
                    raise _Replay
            await _write_hours(conn, batch)
            await _write_rest(conn, batch)
            await conn.execute(_MOVE_MARKS, shards, [new[s] for s in shards])
    except _Replay:
        return False
    return True


async def _write_hours(conn: Conn, batch: Batch) -> None:
    if not batch.hours:
        return
    keys = sorted(batch.hours)
    hours = [batch.hours[k] for k in keys]
    rows = await conn.fetch(
        _HOURS,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [h.team_id for h in hours],
        [h.clicks for h in hours],
        [h.views for h in hours],
        [h.bots for h in hours],
    )
    # The upsert locked every row, so merging the stored sketch in Python is race-free.
    stored: dict[tuple[str, int], bytes | None] = {(r[0], r[1]): r[2] for r in rows}
    subjects: list[str] = []
    buckets: list[int] = []
    blobs: list[bytes] = []
    for key, hour in zip(keys, hours, strict=True):
        if not hour.visitors:
            continue
        sketch = decode_sketch(stored.get(key)) if stored.get(key) else Sketch()
        sketch.add_many(visitor_hashes(hour.visitors))
        subjects.append(key[0])
        buckets.append(key[1])
        blobs.append(sketch.encode())
    if subjects:
        await conn.execute(_SKETCHES, subjects, buckets, blobs)
    # stats_daily: the keys are sorted by (subject, hour), so the day keys come out sorted too.
    days: dict[tuple[str, int], list[Any]] = {}
    for (subject, ms), hour in zip(keys, hours, strict=True):
        if hour.team_id is None:
            continue  # no team: nothing team-wide to count it in
        day = days.get((subject, ms // DAY_MS))
        if day is None:
            days[(subject, ms // DAY_MS)] = [hour.team_id, hour.clicks, hour.views, hour.bots]
        else:
            day[1] += hour.clicks
            day[2] += hour.views
            day[3] += hour.bots
    if days:
        sums = list(days.values())
        await conn.execute(
            _DAYS,
            [k[0] for k in days],
            [k[1] for k in days],
            [d[0] for d in sums],
            [d[1] for d in sums],
            [d[2] for d in sums],
            [d[3] for d in sums],
        )


async def _write_rest(conn: Conn, batch: Batch) -> None:
    rows = [
        (combo[:UUID_LEN], bucket, i + 1, combo[UUID_LEN:], n)
        for (i, bucket), tally in batch.dims.items()
        for combo, n in tally.items()
    ]
    if any(len(r[3]) > MAX_VALUE for r in rows):
        rows = _truncated(rows)
    if rows:
        rows.sort()
        await conn.execute(
            _BREAKDOWNS,
            ",".join([r[0] for r in rows]),
            ",".join([str(r[1]) for r in rows]),
            ",".join([str(r[2]) for r in rows]),
            SEP + SEP.join([r[3] for r in rows]),
            ",".join([str(r[4]) for r in rows]),
            DIMENSIONS,
        )
        await _write_team_dims(conn, batch, rows)
    if batch.totals:
        ids = sorted(batch.totals)
        totals = [batch.totals[i] for i in ids]
        await conn.execute(
            _TOTALS,
            ids,
            [t.team_id for t in totals],
            [t.clicks for t in totals],
            [t.views for t in totals],
            [t.bots for t in totals],
            [t.last_ms for t in totals],
        )
    if batch.links:
        ids = sorted(batch.links)
        await conn.execute(_LOCK_LINKS, ids)
        await conn.execute(_LINKS, ids, [batch.links[i][0] for i in ids], [batch.links[i][1] for i in ids])
    if batch.forms:
        columns: list[list[Any]] = [list(c) for c in zip(*batch.forms, strict=True)]
        await conn.execute(_FORMS, *columns)
    if batch.orphans:
        keys = sorted(batch.orphans)
        await conn.execute(
            _ORPHANS, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [batch.orphans[k] for k in keys]
        )


async def _write_team_dims(conn: Conn, batch: Batch, rows: list[_Row]) -> None:
    """stats_team_hourly / stats_team_daily from the breakdown rows: a link's rows are clicks, a bio
    page's views (the only breakdowns there are); a subject's team is its totals' team."""
    owner = {s: (t.team_id, s in batch.links) for s, t in batch.totals.items() if t.team_id is not None}
    sums: dict[tuple[str, int, int, str], list[int]] = {}
    for subject, bucket, dim, value, n in rows:
        o = owner.get(subject)
        if o is None:
            continue  # no team: nothing team-wide to count it in
        key = (o[0], dim, bucket, value)
        pair = sums.get(key)
        if pair is None:
            pair = sums[key] = [0, 0]
        pair[0 if o[1] else 1] += n
    if not sums:
        return
    keys = sorted(sums)
    pairs = [sums[k] for k in keys]
    await conn.execute(
        _TEAM_DIMS,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [k[3] for k in keys],
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        DIMENSIONS,
    )


def _truncated(rows: list[_Row]) -> list[_Row]:
    """Cut values to MAX_VALUE characters, summing rows that become equal."""
    merged: dict[tuple[str, int, int, str], int] = {}
    for subject, bucket, dim, value, n in rows:
        key = (subject, bucket, dim, value[:MAX_VALUE])
        merged[key] = merged.get(key, 0) + n
    return [(*key, n) for key, n in merged.items()]
