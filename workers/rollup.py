"""The roll-up: stream shards in Redis -> sums in memory -> one PostgreSQL transaction.

One :class:`Rollup` per worker process runs two loops:

* ``manage`` (about once a second): heartbeat, share the shards fairly among live workers
  (``ceil(shards / workers)`` each), take free shard leases, renew held ones, drop extras,
  refresh the backlog/lag gauges, and (shard 0's owner) prune batch ids older than a day.
* ``roll`` (sub-second): ``XRANGE`` every held shard from its watermark (exclusive), sum the
  entries, and apply the sums plus every shard's new watermark in one transaction
  (:func:`workers.queries.apply_batch`). Only after the commit are the entries trimmed.

Guarantees: the watermark and the counters commit together, so an entry is applied exactly
once. A crash before the commit loses nothing (the entries are still in Redis); a crash after
it is harmless (the next read starts after the watermark, and a stale reader's commit is
refused). An entry whose edge batch id (field ``b``) was applied already, from any shard, is
skipped: the edge retries an XADD whose reply was lost. Any failure (PostgreSQL down, Redis
down, a bug) pauses the loop with a backoff and retries from PostgreSQL's watermark; events
wait in Redis meanwhile. Both loops report to :class:`workers.health.Health` (``rollup`` and
``rollup-manage``), which logs each outage once and tells ``/healthz`` whether they go round.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import random
import secrets
import threading
import time
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from redirector import keys
from redirector.events import BATCH_ID_FIELD, EVENT_FIELD
from redirector.keys import event_stream_key
from workers import lease
from workers.aggregate import Aggregator, Batch, merge, summarize
from workers.health import Health
from workers.metrics import Metrics
from workers.queries import INITIAL_ID, apply_batch, load_watermarks, prune_batches, seen_batches
from workers.settings import Settings

log = logging.getLogger("linkedge.worker")
_PRUNE_EVERY = 60.0  # seconds between prunes of old batch ids


def next_id(stream_id: str) -> str:
    """The smallest id after ``stream_id`` (``XTRIM MINID`` keeps ids >= its argument)."""
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


@dataclass(frozen=True)
class Read:
    """Summed entries of some shards: from after ``start[shard]`` up to ``end[shard]`` inclusive."""

    start: dict[int, str]
    end: dict[int, str]
    batch: Batch


def _groups(payloads: list[list[bytes | None]], n: int) -> list[list[list[bytes | None]]]:
    """``payloads`` (per shard) dealt into at most ``n`` groups of about equal size, none empty."""
    groups: list[list[list[bytes | None]]] = [[] for _ in range(n)]
    sizes = [0] * n
    for shard in sorted(payloads, key=lambda entries: -sum(len(p or b"") for p in entries)):
        i = sizes.index(min(sizes))
        groups[i].append(shard)
        sizes[i] += sum(len(p or b"") for p in shard)
    return [g for g in groups if g] or [[]]


def create_summer(settings: Settings) -> Executor | None:
    """The summing processes :class:`Rollup` hands its reads to (``ROLLUP_SUM_PROCESSES``), or None.

    Fresh interpreters (spawn): they inherit no event loop, socket or lock of the worker. Shut them
    down with ``shutdown(cancel_futures=True)``; if the worker dies, they exit within a second.
    """
    if settings.rollup_sum_processes < 1:
        return None
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=settings.rollup_sum_processes,
        mp_context=context,
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


def _exit_with_parent(parent: int) -> None:
    """In a summing process: exit once the worker that started it is gone (killed, say). Its
    pipe never reports EOF (the process holds both ends of the executor's queue), so it watches."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="watch-worker", daemon=True).start()


class Rollup:
    """Owns some stream shards and applies their events to PostgreSQL."""

    def __init__(
        self,
        settings: Settings,
        pg: asyncpg.Pool,
        redis: Redis,
        metrics: Metrics | None = None,
        health: Health | None = None,
        summer: Executor | None = None,
    ) -> None:
        self.settings = settings
        self.pg = pg
        self.redis = redis
        # Processes that sum the entries (workers.aggregate.summarize) while this one commits the
        # batch before: the roll-up then uses more cores. None: sum here, between commits.
        self.summer = summer
        self.summers = max(1, settings.rollup_sum_processes)  # a read is summed in this many parts
        self.metrics = metrics or Metrics()
        self.health = health or Health(self.metrics, settings.stall_after)
        self.token = secrets.token_hex(8)
        self.owned: set[int] = set()
        self.positions: dict[int, str] = {}  # last id applied, per held shard (from PostgreSQL)
        self.newest_ms = 0

    def _stream(self, shard: int) -> str:
        return event_stream_key(self.settings.key_prefix, shard)

    def _lease(self, shard: int) -> str:
        return keys.shard_lease_key(self.settings.key_prefix, shard)

    async def _positions(self, shards: list[int]) -> dict[int, str]:
        """Committed watermarks of ``shards``, read from PostgreSQL when not known yet."""
        missing = [s for s in shards if s not in self.positions]
        if missing:
            async with self.pg.acquire() as conn:
                loaded = await load_watermarks(conn, missing)
            # A shard given up while the load was in flight stays out (its next owner reloads it).
            self.positions.update({s: mark for s, mark in loaded.items() if s in self.owned})
            # Entries applied just before a crash (commit done, trim not) are dropped here.
            await self._trim({s: mark for s, mark in loaded.items() if mark != INITIAL_ID})
        return {s: self.positions[s] for s in shards if s in self.positions}

    async def read(self, start: dict[int, str]) -> Read | None:
        """XRANGE each shard after ``start`` and sum the entries; None when there is nothing new.

        Summing is CPU work: done in the summing process when there is one, else here, yielding to
        the loop after each shard so that a commit in flight (see :meth:`roll`) keeps feeding
        PostgreSQL its next statement meanwhile.
        """
        shards = sorted(start)
        if not shards:
            return None
        count = max(1, self.settings.rollup_batch // len(shards))
        async with self.redis.pipeline(transaction=False) as pipe:
            for s in shards:
                pipe.xrange(self._stream(s), min=f"({start[s]}", count=count)
            replies = await pipe.execute()
        new = {s: entries[-1][0].decode() for s, entries in zip(shards, replies, strict=True) if entries}
        if not new:
            return None
        skip = await self._duplicates(replies)
        payloads: list[list[bytes | None]] = []  # per shard
        batch_ids: list[str] = []
        duplicates = 0
        for entries in replies:
            shard: list[bytes | None] = []
            for _, fields in entries:
                batch_id = fields.get(BATCH_ID_FIELD)
                if batch_id is not None:
                    batch_id = batch_id.decode("utf-8", "replace")
                    if batch_id in skip:
                        duplicates += 1
                        continue
                    skip.add(batch_id)  # a second copy later in this same read is a duplicate too
                    batch_ids.append(batch_id)
                shard.append(fields.get(EVENT_FIELD))
            payloads.append(shard)
        batch = await self._sum(payloads)
        batch.batch_ids, batch.duplicates = batch_ids, duplicates
        return Read({s: start[s] for s in new}, new, batch)

    async def _sum(self, payloads: list[list[bytes | None]]) -> Batch:
        """Sum the entries: in the summing process when there is one (its failure falls back to here)."""
        if self.summer is not None:
            loop = asyncio.get_running_loop()
            try:
                parts = await asyncio.gather(
                    *(loop.run_in_executor(self.summer, summarize, g) for g in _groups(payloads, self.summers))
                )
                return merge(list(parts))
            except BrokenExecutor as e:
                log.warning("the summing process failed (%s); summing in the worker from now on", e)
                self.summer = None
        agg = Aggregator()
        for shard in payloads:
            for payload in shard:
                agg.add_entry(payload)
            if shard:
                agg.count()
                await asyncio.sleep(0)  # a commit in flight keeps feeding PostgreSQL meanwhile
        return agg.finish()

    async def _duplicates(self, replies: list[list[tuple[bytes, dict[bytes, bytes]]]]) -> set[str]:
        """Edge batch ids in this read that PostgreSQL says were applied already."""
        ids = [
            f[BATCH_ID_FIELD].decode("utf-8", "replace")
            for entries in replies
            for _, f in entries
            if BATCH_ID_FIELD in f
        ]
        if not ids:
            return set()
        async with self.pg.acquire() as conn:
            return await seen_batches(conn, ids)

    async def commit(self, read: Read) -> bool:
        """Apply a read in one transaction, then trim; False when its entries were applied already."""
        async with self.pg.acquire() as conn:
            applied = await apply_batch(conn, read.start, read.end, read.batch)
        if not applied:
            # Someone else applied these entries (a takeover, or our own commit before a crash).
            self.metrics.replays.inc()
            self.positions.clear()
            return False
        self.positions.update(read.end)
        await self._trim(read.end)
        batch, m = read.batch, self.metrics
        m.batches.inc()
        m.bad_lines.inc(batch.bad)
        m.duplicates.inc(batch.duplicates)
        for kind, n in batch.kinds.items():
            m.events.labels(kind).inc(n)
        if batch.newest_ms > self.newest_ms:
            self.newest_ms = batch.newest_ms
            m.last_event.set(batch.newest_ms / 1000)
        return True

    async def step(self) -> int:
        """Read, sum and apply one batch over the held shards; returns the stream entries consumed."""
        read = await self.read(await self._positions(sorted(self.owned)))
        if read is None:
            return 0
        await self.commit(read)
        return read.batch.entries + read.batch.duplicates

    async def _trim(self, marks: dict[int, str]) -> None:
        """Drop applied entries; a failure here is harmless (the next trim covers them)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for s, mark in marks.items():
                    pipe.xtrim(self._stream(s), minid=next_id(mark), approximate=False)
                await pipe.execute()
        except Exception as e:
            # Once the roll-up loop is failing, its outage has been logged: say no more each retry.
            quiet = self.health.loop("rollup").failing is not None
            log.log(logging.DEBUG if quiet else logging.WARNING, "trim after commit failed (retried next step): %s", e)

    async def roll(self, stop: asyncio.Event, *, until_idle: bool = False) -> None:
        """Apply batches until ``stop`` is set (or, ``until_idle``, until nothing is left); never raises.

        Two stages overlap: while batch k commits (PostgreSQL works on the other core), batch
        k+1 is read and summed from where batch k ended. A batch only commits after the one
        before it did; if that one fails, the read-ahead is dropped and reading restarts from
        PostgreSQL's watermarks.
        """
        loop = self.health.loop("rollup")
        loop.start()
        idle = self.settings.rollup_idle_ms / 1000
        inflight: asyncio.Task[bool] | None = None
        ahead: dict[int, str] = {}  # where the next read starts: the end of the batch in flight
        while not stop.is_set():
            try:
                start = await self._positions(sorted(self.owned))
                start.update({s: ahead[s] for s in start if s in ahead})
                read = await self.read(start)
                if inflight is not None:
                    task, inflight = inflight, None
                    if not await task:
                        read = None  # refused as a replay: the read-ahead is stale too
                        ahead.clear()
                if read is None:
                    ahead.clear()
                    loop.ok()
                    if until_idle:
                        break
                    await loop.pause(idle, stop)
                    continue
                ahead = dict(read.end)
                inflight = asyncio.create_task(self.commit(read))
            except Exception as e:
                # PostgreSQL or Redis went away, or a bug: the events stay in Redis. Re-read the
                # watermarks afterwards, since a commit interrupted mid-flight may or may not have landed.
                if inflight is not None:
                    await asyncio.gather(inflight, return_exceptions=True)
                    inflight = None
                ahead.clear()
                self.metrics.errors.inc()
                self.positions.clear()
                await loop.pause(loop.failed(e), stop)
                continue
            loop.ok()
        if inflight is not None:
            await asyncio.gather(inflight, return_exceptions=True)
        loop.finish()

    async def manage(self, stop: asyncio.Event) -> None:
        """Keep this worker's fair share of shard leases until ``stop`` is set; never raises."""
        interval = min(1.0, self.settings.lease_ms / 3000)
        loop = self.health.loop("rollup-manage", first_pause=interval)
        loop.start()
        pruned = time.monotonic()
        while not stop.is_set():
            try:
                await self.balance()
                await self.observe()
            except Exception as e:
                pause = loop.failed(e)
            else:
                loop.ok()
                pause = interval
            # One worker (shard 0's owner) forgets old batch ids now and then.
            if 0 in self.owned and time.monotonic() - pruned > _PRUNE_EVERY:
                pruned = time.monotonic()
                try:
                    async with self.pg.acquire() as conn:
                        await prune_batches(conn)
                except Exception as e:
                    log.warning("pruning applied batch ids failed (retried later): %s", e)
            await loop.pause(pause, stop)
        await self.release_all()
        loop.finish()

    async def balance(self, *, greedy: bool = False) -> None:
        """Heartbeat, renew held leases, then take (or give back) shards to reach the fair share."""
        s, r = self.settings, self.redis
        now = int(time.time() * 1000)
        key = keys.workers_key(s.key_prefix)
        async with r.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {self.token: now})
            pipe.zremrangebyscore(key, 0, now - s.lease_ms)
            pipe.zcard(key)
            live = (await pipe.execute())[2]
        for shard in sorted(self.owned):
            if not await lease.renew(r, self._lease(shard), self.token, s.lease_ms):
                self._drop(shard)
        target = s.event_shards if greedy else math.ceil(s.event_shards / max(1, live))
        start = random.randrange(s.event_shards)
        for i in range(s.event_shards):
            shard = (start + i) % s.event_shards
            if len(self.owned) >= target:
                break
            if shard not in self.owned and await lease.acquire(r, self._lease(shard), self.token, s.lease_ms):
                self.owned.add(shard)
                self.positions.pop(shard, None)
        while len(self.owned) > target:
            shard = max(self.owned)
            self._drop(shard)
            await lease.release(r, self._lease(shard), self.token)
        self.metrics.shards_owned.set(len(self.owned))

    def _drop(self, shard: int) -> None:
        self.owned.discard(shard)
        self.positions.pop(shard, None)

    async def observe(self) -> None:
        """Backlog and lag of every shard (the stream head is the oldest unapplied entry)."""
        n = self.settings.event_shards
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(n):
                pipe.xlen(self._stream(shard))
                pipe.xrange(self._stream(shard), count=1)
            replies = await pipe.execute()
        now = time.time()
        for shard in range(n):
            length, head = replies[2 * shard], replies[2 * shard + 1]
            self.metrics.backlog.labels(str(shard)).set(length)
            age = now - int(head[0][0].split(b"-")[0]) / 1000 if head else 0.0
            self.metrics.lag.labels(str(shard)).set(max(0.0, age))

    async def release_all(self) -> None:
        """Give every lease back and leave the worker set, so others take over at once."""
        try:
            for shard in sorted(self.owned):
                await lease.release(self.redis, self._lease(shard), self.token)
            await self.redis.zrem(keys.workers_key(self.settings.key_prefix), self.token)
        except Exception as e:
            log.warning("could not release shard leases (they expire on their own): %s", e)
        self.owned.clear()
        self.positions.clear()

    async def drain(self) -> int:
        """Take every free shard and apply until the streams are empty; returns entries consumed."""
        total = 0
        await self.balance(greedy=True)
        try:
            while consumed := await self.step():
                total += consumed
        finally:
            await self.release_all()
        return total
