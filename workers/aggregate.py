"""Summing a batch of stream entries in memory, before one transaction writes the sums.

Which counters an event moves (a bot moves ``bots`` of the same subjects instead, and
nothing else):

==============================  ==============================================================
CLICK with link_id              link: clicks, visitors, breakdowns; ``links.scan_count``
CLICK/BLOCK_CLICK with block    block: clicks, visitors; page: clicks (visitors of a page are
                                its viewers, so a block click adds none)
VIEW                            page: views, visitors, breakdowns
FORM                            a ``form_submissions`` row
ORPHAN (human)                  the domain's ``domain_orphan_hourly`` visits of its kind
==============================  ==============================================================

Lines that do not decode, or whose ids are not UUIDs, are skipped and counted in ``bad``.
This is the roll-up's hot loop. Plain link clicks and page views (nearly all traffic) are
counted column-wise in bulk (:meth:`Aggregator._bulk`); everything else goes row by row
(:meth:`Aggregator._add_rows`). Totals, breakdown rows and visitor hashes are derived once
per distinct key (:meth:`Aggregator.finish`, :mod:`workers.queries`).
"""

from __future__ import annotations

import gc
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, call, floordiv, itemgetter
from typing import Any
from uuid import UUID

import orjson

from redirector.events import (
    BLOCK_CLICK,
    CLICK,
    COL_BLOCK,
    COL_BOT,
    COL_DOMAIN,
    COL_EXTRA,
    COL_KIND,
    COL_LINK,
    COL_PAGE,
    COL_TEAM,
    COL_TS,
    COL_VERSION,
    COL_VISITOR,
    COLUMNS,
    DENSE,
    DIMENSION_COLUMNS,
    EVENT_VERSION,
    FORM,
    KINDS,
    ORPHAN,
    ORPHAN_KINDS,
    VIEW,
    decode_event,
    event_columns,
)

HOUR_MS = 3_600_000
_MAX_TS_MS = 1 << 43  # year 2248: anything later is a corrupt timestamp
MAX_VALUE = 200
UUID_LEN = 36
_TS, _TEAM, _VISITOR = itemgetter(COL_TS), itemgetter(COL_TEAM), itemgetter(COL_VISITOR)
_IDS = itemgetter(COL_TEAM, COL_LINK, COL_PAGE, COL_BLOCK)

HourKey = tuple[str, int]  # (subject id, hour start in epoch ms)

# The bulk path splits a line up to COL_TAIL only: the dense dimensions' columns come before it,
# the sparse ones' are in the tail (checked here, as the contract's column order could change).
COL_TAIL = COL_DOMAIN
TAIL_TABS = COLUMNS - 1 - COL_TAIL
EMPTY_TAIL = "\t" * TAIL_TABS
_SPARSE = tuple((i, col - COL_TAIL) for i, col in enumerate(DIMENSION_COLUMNS) if i >= DENSE)
assert all(col < COL_TAIL for col in DIMENSION_COLUMNS[:DENSE]) and all(off >= 0 for _, off in _SPARSE)
assert max(COL_TS, COL_TEAM, COL_LINK, COL_PAGE, COL_BLOCK, COL_VISITOR, COL_BOT) < COL_TAIL


@dataclass(slots=True)
class Hour:
    team_id: str | None
    clicks: int = 0
    views: int = 0
    bots: int = 0
    visitors: set[str] = field(default_factory=set)  # raw visitor ids; hashed in workers.queries


@dataclass(slots=True)
class Total:
    team_id: str | None
    clicks: int = 0
    views: int = 0
    bots: int = 0
    last_ms: int = 0  # newest human event, 0 for none


@dataclass
class Batch:
    """The sums of a run of stream entries (of one or more shards)."""

    entries: int = 0
    duplicates: int = 0  # entries skipped: their edge batch id was applied already
    batch_ids: list[str] = field(default_factory=list)  # edge batch ids of the entries summed
    events: int = 0
    bad: int = 0
    newest_ms: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    hours: dict[HourKey, Hour] = field(default_factory=dict)
    # Breakdowns of links' human clicks and pages' human views: (index in events.DIMENSIONS, hour) ->
    # Counter of subject id + value (ids are canonical UUIDs, always 36 chars, so the key splits).
    dims: dict[tuple[int, int], Counter[str]] = field(default_factory=dict)
    totals: dict[str, Total] = field(default_factory=dict)
    links: dict[str, list[int]] = field(default_factory=dict)  # link id -> [human clicks, last ms]
    forms: list[tuple[str | None, str, str | None, Any, str, int]] = field(default_factory=list)
    orphans: Counter[tuple[str, int, str]] = field(default_factory=Counter)  # (domain id, hour ms, kind)


class Aggregator:
    """Feeds stream entries into a :class:`Batch`; call :meth:`finish` once at the end."""

    def __init__(self) -> None:
        self.batch = Batch()
        self._ids: dict[str, str | None] = {"": ""}  # raw id -> canonical UUID text, None if invalid
        self._last: dict[str, int] = {}  # subject -> newest human event
        self._link_ids: set[str] = set()
        self._lines: list[str] = []

    def _canon(self, value: str) -> str | None:
        try:
            canon: str | None = str(UUID(value))
        except ValueError:
            canon = None
        self._ids[value] = canon
        return canon

    def add_entry(self, payload: bytes | None) -> None:
        """Add one stream entry (one edge flush); a missing payload counts as one bad line."""
        self.batch.entries += 1
        if payload is None:
            self.batch.bad += 1
            return
        text = payload.decode("utf-8", "replace")
        if "\x00" in text:  # PostgreSQL text cannot hold NUL
            text = text.replace("\x00", "")
        if "\x1f" in text:  # the separator of breakdown values in workers.queries
            text = text.replace("\x1f", "")
        self._lines.extend(text.split("\n"))

    def _add_rows(self, rows: list[list[str]]) -> None:
        """Count events one by one: every kind, any shape (the lenient decoder handles the odd ones)."""
        b, ids, canon, id_columns = self.batch, self._ids, self._canon, _IDS
        columns, version, kind_col, ts_col = COLUMNS, COL_VERSION, COL_KIND, COL_TS
        for p in rows:
            if len(p) != columns or p[version] != EVENT_VERSION or p[kind_col] not in KINDS or not p[ts_col].isdigit():
                # Anything but the current encoding goes through the contract's lenient decoder.
                ev = decode_event("\t".join(p))
                if ev is None:
                    b.bad += 1
                    continue
                p = event_columns(ev)
            kind, ts = p[kind_col], int(p[ts_col])
            team, link, page, block = (ids[x] if x in ids else canon(x) for x in id_columns(p))
            if team is None or link is None or page is None or block is None or not 0 < ts < _MAX_TS_MS:
                b.bad += 1
                continue
            if kind == ORPHAN:
                domain = ids[p[COL_DOMAIN]] if p[COL_DOMAIN] in ids else canon(p[COL_DOMAIN])
                if not domain or p[COL_EXTRA] not in ORPHAN_KINDS:
                    b.bad += 1
                    continue
                if p[COL_BOT] != "1":
                    b.orphans[(domain, ts - ts % HOUR_MS, p[COL_EXTRA])] += 1
            elif kind == FORM:
                data = _form_data(p[COL_EXTRA])
                if not page or data is None:
                    b.bad += 1
                    continue
                b.forms.append((team or None, page, block or None, data, p[COL_VISITOR], ts))
            elif kind == VIEW:
                if not page:
                    b.bad += 1
                    continue
                self._one(page, team, ts, p, "views", visits=True, breaks=True)
            else:
                # CLICK needs a link or a page; BLOCK_CLICK needs a page and a block.
                if (not page or not block) if kind == BLOCK_CLICK else (not link and not page):
                    b.bad += 1
                    continue
                if link:
                    self._link_ids.add(link)
                    self._one(link, team, ts, p, "clicks", visits=True, breaks=True)
                if block:
                    self._one(block, team, ts, p, "clicks", visits=True, breaks=False)
                if page:
                    self._one(page, team, ts, p, "clicks", visits=False, breaks=False)
            b.events += 1
            b.kinds[kind] += 1
            b.newest_ms = max(b.newest_ms, ts)

    def _one(self, subject: str, team: str, ts: int, p: list[str], column: str, *, visits: bool, breaks: bool) -> None:
        key = (subject, ts - ts % HOUR_MS)
        h = self.batch.hours.get(key)
        if h is None:
            h = self.batch.hours[key] = Hour(team or None)
        if p[COL_BOT] == "1":
            h.bots += 1
            return
        setattr(h, column, getattr(h, column) + 1)
        if visits and p[COL_VISITOR]:
            h.visitors.add(p[COL_VISITOR])
        if breaks:
            for i, col in enumerate(DIMENSION_COLUMNS):
                if i < DENSE or p[col]:
                    self.batch.dims.setdefault((i, key[1]), Counter())[subject + p[col]] += 1
        if ts > self._last.get(subject, 0):
            self._last[subject] = ts

    def _bulk(self, rows: list[list[str]], column: int, kind: str, *, human: bool) -> list[list[str]]:
        """Count plain link clicks (``column`` COL_LINK) or page views (COL_PAGE) column-wise, in C loops.

        Same result as :meth:`_add_rows`, several times faster: the per-event work is a handful
        of ``map``/``zip``/``Counter`` passes, and Python code runs once per distinct key.
        Returns the rows it declined (odd ids or timestamps), for the row-by-row path.
        """
        if not rows:
            return []
        try:
            stamps = list(map(int, map(_TS, rows)))
        except ValueError:
            return rows
        ids = self._ids
        subjects = list(map(itemgetter(column), rows))
        teams = list(map(_TEAM, rows))
        for raw in set(subjects).union(teams):
            if raw not in ids:
                self._canon(raw)
            if ids[raw] != raw:  # not canonical, or not a UUID: let the careful path decide
                return rows
        if "" in subjects or min(stamps) <= 0 or max(stamps) >= _MAX_TS_MS:
            return rows
        hour_of = list(map(floordiv, stamps, repeat(HOUR_MS)))
        if min(hour_of) == max(hour_of):
            self._bulk_hour(hour_of[0] * HOUR_MS, rows, subjects, teams, stamps, kind, human)
        else:  # events of several hours (an hour boundary, a replay of old events): one group per hour
            order = sorted(range(len(rows)), key=hour_of.__getitem__)
            ordered_hours = list(map(hour_of.__getitem__, order))
            for hour in sorted(set(hour_of)):
                idx = order[bisect_left(ordered_hours, hour) : bisect_right(ordered_hours, hour)]
                self._bulk_hour(
                    hour * HOUR_MS,
                    list(map(rows.__getitem__, idx)),
                    list(map(subjects.__getitem__, idx)),
                    list(map(teams.__getitem__, idx)),
                    list(map(stamps.__getitem__, idx)),
                    kind,
                    human,
                )
        b = self.batch
        if kind == CLICK:
            self._link_ids.update(subjects)
        b.events += len(rows)
        b.kinds[kind] += len(rows)
        b.newest_ms = max(b.newest_ms, max(stamps))
        return []

    def _bulk_hour(
        self,
        hour: int,
        rows: list[list[str]],
        subjects: list[str],
        teams: list[str],
        stamps: list[int],
        kind: str,
        human: bool,
    ) -> None:
        """:meth:`_bulk` for events of one hour: keys are plain strings, which hash fast."""
        hours = self.batch.hours
        team_of = dict(zip(subjects, teams, strict=True))
        for subject, n in Counter(subjects).items():
            key = (subject, hour)
            h = hours.get(key)
            if h is None:
                h = hours[key] = Hour(team_of[subject] or None)
            if not human:
                h.bots += n
            elif kind == VIEW:
                h.views += n
            else:
                h.clicks += n
        if not human:
            return
        # set.add of each subject's visitors, called from C: no Python frame per event.
        adders = {subject: hours[(subject, hour)].visitors.add for subject in team_of}
        deque(map(call, map(adders.__getitem__, subjects), map(_VISITOR, rows)), maxlen=0)
        for subject in team_of:
            hours[(subject, hour)].visitors.discard("")
        dims = self.batch.dims
        columns = list(zip(*rows, strict=True))  # transposed in one C pass, not a pass per dimension
        for i in range(DENSE):
            tally = dims.get((i, hour))
            if tally is None:
                tally = dims[(i, hour)] = Counter()
            tally.update(map(add, subjects, columns[DIMENSION_COLUMNS[i]]))
        # The sparse dimensions travel as one tail string per event (domain to network): counted
        # per distinct subject and tail, then split once per distinct pair. Most tails repeat
        # (a link's destination, no rule, no UTM), so this is a fraction of a split per event.
        tails = columns[COL_TAIL]
        if tails.count(EMPTY_TAIL) == len(tails):
            self._newest(subjects, stamps)
            return
        tallies = []
        for i, offset in _SPARSE:
            tally = dims.get((i, hour))
            if tally is None:
                tally = dims[(i, hour)] = Counter()
            tallies.append((tally, offset))
        for key, n in Counter(map(add, subjects, tails)).items():
            values = key[UUID_LEN:]
            if values == EMPTY_TAIL:
                continue
            subject, values = key[:UUID_LEN], values.split("\t")
            for tally, offset in tallies:
                value = values[offset]
                if value:
                    combo = subject + value
                    tally[combo] = tally.get(combo, 0) + n
        self._newest(subjects, stamps)

    def _newest(self, subjects: list[str], stamps: list[int]) -> None:
        """Keep each subject's newest human event."""
        last = self._last
        if stamps == sorted(stamps):  # the usual case: the last occurrence is the newest
            newest = dict(zip(subjects, stamps, strict=True))
        else:
            newest = {}
            for subject, ts in zip(subjects, stamps, strict=True):
                if ts > newest.get(subject, 0):
                    newest[subject] = ts
        for subject, ts in newest.items():
            if ts > last.get(subject, 0):
                last[subject] = ts

    def count(self) -> None:
        """Count the lines collected so far (``finish`` does too; calling it earlier splits the work)."""
        # Splitting keeps ~17 objects per event alive until counted; with the cyclic GC on, its
        # collections rescan them all again and again (2-3x slower). Nothing here makes cycles.
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._count()
        finally:
            if enabled:
                gc.enable()

    def _count(self) -> None:
        clicks: list[list[str]] = []
        bot_clicks: list[list[str]] = []
        views: list[list[str]] = []
        bot_views: list[list[str]] = []
        rest: list[list[str]] = []
        # The columns as locals: the loop runs once per event.
        parts, version, kind_col, bot, tail = COL_TAIL + 1, COL_VERSION, COL_KIND, COL_BOT, COL_TAIL
        link, page, block = COL_LINK, COL_PAGE, COL_BLOCK
        for line in self._lines:
            if not line:
                continue
            p = line.split("\t", COL_TAIL)  # the sparse columns stay one string: see _bulk_hour
            if len(p) == parts and p[version] == EVENT_VERSION and p[tail].count("\t") == TAIL_TABS:
                kind = p[kind_col]
                if kind == CLICK and not p[page] and not p[block]:
                    (bot_clicks if p[bot] == "1" else clicks).append(p)
                    continue
                if kind == VIEW and not p[link] and not p[block]:
                    (bot_views if p[bot] == "1" else views).append(p)
                    continue
            rest.append(line.split("\t"))
        self._lines = []
        rest += self._bulk(clicks, COL_LINK, CLICK, human=True)
        rest += self._bulk(bot_clicks, COL_LINK, CLICK, human=False)
        rest += self._bulk(views, COL_PAGE, VIEW, human=True)
        rest += self._bulk(bot_views, COL_PAGE, VIEW, human=False)
        self._add_rows(rest)

    def finish(self) -> Batch:
        """Count what is left, then derive totals and link counters from the per-hour sums."""
        self.count()
        b = self.batch
        totals = b.totals = {}
        b.links = {}
        for (subject, _), h in b.hours.items():
            t = totals.get(subject)
            if t is None:
                t = totals[subject] = Total(h.team_id, last_ms=self._last.get(subject, 0))
            t.clicks += h.clicks
            t.views += h.views
            t.bots += h.bots
        for link in self._link_ids:
            t = totals[link]
            if t.clicks:
                b.links[link] = [t.clicks, t.last_ms]
        return b


def _form_data(extra: str) -> dict[str, Any] | None:
    try:
        data = orjson.loads(extra.replace("\\u0000", "") or "{}")  # jsonb rejects the NUL escape
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def merge(batches: list[Batch]) -> Batch:
    """One batch with the sums of ``batches`` (finished ones, of disjoint stream entries)."""
    out, *rest = batches
    for b in rest:
        out.entries += b.entries
        out.duplicates += b.duplicates
        out.batch_ids += b.batch_ids
        out.events += b.events
        out.bad += b.bad
        out.newest_ms = max(out.newest_ms, b.newest_ms)
        out.kinds.update(b.kinds)
        for key, h in b.hours.items():
            o = out.hours.get(key)
            if o is None:
                out.hours[key] = h
                continue
            o.clicks, o.views, o.bots = o.clicks + h.clicks, o.views + h.views, o.bots + h.bots
            o.visitors |= h.visitors
            o.team_id = o.team_id or h.team_id
        for dim_hour, tally in b.dims.items():
            mine = out.dims.get(dim_hour)
            if mine is None:
                out.dims[dim_hour] = tally
            else:
                mine.update(tally)
        for subject, t in b.totals.items():
            m = out.totals.get(subject)
            if m is None:
                out.totals[subject] = t
                continue
            m.clicks, m.views, m.bots = m.clicks + t.clicks, m.views + t.views, m.bots + t.bots
            m.last_ms = max(m.last_ms, t.last_ms)
            m.team_id = m.team_id or t.team_id
        for link, (clicks, last) in b.links.items():
            mine_link = out.links.get(link)
            out.links[link] = [clicks, last] if mine_link is None else [mine_link[0] + clicks, max(mine_link[1], last)]
        out.forms += b.forms
        out.orphans.update(b.orphans)
    return out


def summarize(payloads: list[list[bytes | None]]) -> Batch:
    """The sums of stream entries (grouped per shard): what a summing process runs (see workers.rollup)."""
    agg = Aggregator()
    for shard in payloads:
        for payload in shard:
            agg.add_entry(payload)
        agg.count()
    return agg.finish()
