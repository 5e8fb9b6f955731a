"""The event buffer: counted hits become lines in memory, flushed to Redis streams in batches.

A flush is one XADD of up to ``event_batch`` lines to the next shard (round robin), every
``event_flush_ms`` or as soon as a batch is full, and once more on shutdown. If Redis is down the
lines stay buffered (up to ``event_buffer_max``, then the newest are dropped and counted): the
visitor never sees an error for it.

Each entry also carries a batch id (:data:`redirector.events.BATCH_ID_FIELD`), unique per edge
process. A batch whose XADD failed is kept whole and retried with the same lines and the same id
(perhaps on another shard), so when the first XADD did land and only its reply was lost, the
workers drop the second copy by its id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets

from redirector.events import BATCH_ID_FIELD, EVENT_FIELD, encode_batch
from redirector.keys import event_stream_key
from redirector.metrics import Metrics
from redirector.resp.client import REDIS_ERRORS, Store
from redirector.settings import Settings

log = logging.getLogger(__name__)


class Emitter:
    """Buffers event lines (:func:`redirector.events.encode_event`) and appends them in batches."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self.interval = max(settings.event_flush_ms, 0.1) / 1000
        self.batch = max(1, settings.event_batch)
        self.limit = max(1, settings.event_buffer_max)
        self.keys = [event_stream_key(settings.key_prefix, s) for s in range(max(1, settings.event_shards))]
        self.buffer: list[str] = []
        self._retry: tuple[list[str], str] | None = None  # a failed batch, resent unchanged
        self._room = self.limit  # buffer capacity left beside the batch waiting to be resent
        self._shard = secrets.randbelow(len(self.keys))  # processes start on different shards
        self._batch_prefix = f"{os.getpid():x}-{secrets.token_hex(4)}-"
        self._batch_seq = 0
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def emit(self, line: str) -> None:
        """Append one event line; never blocks, never raises."""
        buffer = self.buffer
        if len(buffer) >= self._room:
            self.metrics.events_dropped += 1
            return
        buffer.append(line)
        if len(buffer) == 1:
            self._wake.set()
        elif len(buffer) >= self.batch:
            self._full.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            await self._wake.wait()
            if len(self.buffer) < self.batch:
                await self._pause(self._full, self.interval)
            if self._closing:
                return  # aclose() drains what is left
            self._full.clear()
            if await self.flush_once():
                failures = 0
            else:
                # Back off whatever the buffer does: Redis is down, retrying per click would spin.
                failures += 1
                await self._pause(self._stop, min(2.0, 0.05 * 2**failures))
            if not self.pending:
                self._wake.clear()

    @staticmethod
    async def _pause(event: asyncio.Event, seconds: float) -> None:
        """Sleep for ``seconds``, cut short when ``event`` is set."""
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass

    @property
    def pending(self) -> int:
        """Events not yet in Redis: the buffer plus a batch waiting to be resent."""
        return len(self.buffer) + (len(self._retry[0]) if self._retry else 0)

    async def flush_once(self) -> bool:
        """XADD one batch: the failed one first, unchanged, else the oldest buffered lines."""
        if self._retry is not None:
            lines, batch_id = self._retry
        elif self.buffer:
            lines = self.buffer[: self.batch]
            del self.buffer[: self.batch]
            self._batch_seq += 1
            batch_id = f"{self._batch_prefix}{self._batch_seq:x}"
        else:
            return True
        self._retry = (lines, batch_id)
        self._room = self.limit - len(lines)
        key = self.keys[self._shard]
        self._shard = (self._shard + 1) % len(self.keys)
        try:
            await self.store.execute("XADD", key, "*", EVENT_FIELD, encode_batch(lines), BATCH_ID_FIELD, batch_id)
        except REDIS_ERRORS as e:
            self.metrics.redis_errors += 1
            self.metrics.event_flush_errors += 1
            if self.metrics.event_flush_errors == 1 or self.metrics.event_flush_errors % 100 == 0:
                log.warning("event flush failed (%s); %d events buffered", e, self.pending)
            return False
        self._retry = None
        self._room = self.limit
        self.metrics.events_flushed += len(lines)
        self.metrics.event_batches += 1
        return True

    async def aclose(self, timeout: float = 3.0) -> None:
        """Stop the loop (never mid-XADD, so nothing is lost or doubled) and flush what is left."""
        self._closing = True
        self._wake.set()
        self._full.set()
        self._stop.set()
        if self._task is not None:
            await self._task

        async def drain() -> None:
            while self.pending:
                if not await self.flush_once():
                    await asyncio.sleep(0.1)

        try:
            await asyncio.wait_for(drain(), timeout)
        except TimeoutError:
            log.error("shutting down with %d unflushed events", self.pending)
            self.metrics.events_dropped += self.pending
            self.buffer.clear()
            self._retry = None
            self._room = self.limit
