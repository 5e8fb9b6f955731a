"""Is the worker degraded (a dependency is down) or wedged (a loop stopped going round)?

Every long-lived loop of the worker (the arq poll loop, which also fires the cron jobs; the
roll-up and its lease upkeep; the cache heal) reports to one :class:`Health` through a
:class:`Loop`: :meth:`Loop.ok` after a good round, :meth:`Loop.failed` after a failed one, and
:meth:`Loop.pause` while it waits. A failed round is retried with capped exponential back-off
and logged once per outage (a line when it starts, one when it ends), not a traceback per try.

*Degraded* means some loop's last round failed, most often because Redis or PostgreSQL does not
answer. That is a state to show in ``/metrics`` and wait out, never a reason to restart the
process: a refused or timed-out call still ends the round, so the loop keeps reporting.
*Wedged* means a started loop has not reported for longer than ``stall_after`` past the end of
its last pause: it hangs on something no timeout covers (a leaked pool connection, a deadlock,
a blocked event loop) or it died. Only that fails ``/healthz``, which is served from a thread, so
it answers even while the event loop is blocked.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import asyncpg
from redis.exceptions import RedisClusterException, RedisError

from workers.metrics import Metrics

log = logging.getLogger("linkedge.worker")

BACKOFF_MAX = 5.0  # seconds: the longest pause between two tries of a failing loop
STALL_AFTER = 120.0  # seconds: must exceed the longest round a timeout allows (PostgreSQL: 60 s)

# What an unreachable or restarting Redis raises, through redis-py or its cluster client.
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisError, RedisClusterException)
# What a lost or unreachable PostgreSQL raises through asyncpg (as api.errors.DATABASE_DOWN).
POSTGRES_DOWN: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect or command timed out
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # e.g. the connection was closed mid-query
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
)
DEPENDENCIES = ("redis", "postgres")


def dependency(exc: BaseException) -> str | None:
    """The dependency whose outage ``exc`` shows (``redis``, ``postgres``), None for anything else."""
    # redis-py wraps socket errors in its own ConnectionError, so Redis is tested first.
    if isinstance(exc, REDIS_DOWN):
        return "redis"
    if isinstance(exc, POSTGRES_DOWN):
        return "postgres"
    return None


class Health:
    """The loops of one worker process and the gauges that sum them up."""

    def __init__(self, metrics: Metrics, stall_after: float = STALL_AFTER) -> None:
        self.metrics = metrics
        self.stall_after = stall_after
        self._loops: tuple[Loop, ...] = ()  # replaced, never mutated: the HTTP thread reads it
        metrics.wedged.set_function(lambda: float(bool(self.stalled())))
        self._refresh()

    def loop(self, name: str, first_pause: float = 0.1) -> Loop:
        """The loop called ``name`` (created on first use); it backs off from ``first_pause`` seconds."""
        for loop in self._loops:
            if loop.name == name:
                return loop
        loop = Loop(self, name, first_pause)
        self._loops = (*self._loops, loop)
        self.metrics.loop_up.labels(name).set(1)
        self.metrics.loop_heartbeat.labels(name).set_function(lambda: loop.last_beat)
        self.metrics.loop_failures.labels(name)
        return loop

    def failing(self) -> dict[str, str]:
        """Loop name -> what it fails on (``redis``, ``postgres`` or an exception type)."""
        return {loop.name: loop.failing for loop in self._loops if loop.failing is not None}

    def down(self) -> set[str]:
        """The dependencies some loop currently fails to reach."""
        return {loop.failing for loop in self._loops if loop.failing in DEPENDENCIES}

    def stalled(self, now: float | None = None) -> dict[str, float]:
        """Started loops overdue by more than ``stall_after``: name -> seconds since they were due."""
        now = time.monotonic() if now is None else now
        return {loop.name: now - loop.due for loop in self._loops if loop.running and now - loop.due > self.stall_after}

    def check(self) -> tuple[bool, str]:
        """``/healthz``: False only when wedged; a dependency outage is degraded, still alive."""
        stalled = self.stalled()
        if stalled:
            what = ", ".join(f"{name} ({age:.0f} s)" for name, age in sorted(stalled.items()))
            return False, f"wedged: no progress from {what}"
        failing = self.failing()
        if failing:
            return True, "degraded: " + ", ".join(f"{name} fails on {why}" for name, why in sorted(failing.items()))
        return True, "ok"

    def _refresh(self) -> None:
        down, m = self.down(), self.metrics
        m.redis_up.set(0 if "redis" in down else 1)
        m.postgres_up.set(0 if "postgres" in down else 1)
        m.degraded.set(1 if self.failing() else 0)


class Loop:
    """One loop's heartbeat, failure streak and back-off; owned by the loop, read by ``/healthz``."""

    def __init__(self, health: Health, name: str, first_pause: float = 0.1) -> None:
        self.health = health
        self.name = name
        self.first_pause = first_pause
        self.running = False
        self.due = time.monotonic()  # when the loop is expected to report next
        self.last_beat = time.time()
        self.failing: str | None = None  # what the current failure streak is about
        self.failures = 0  # failed rounds in the current streak
        self._since = 0.0

    def start(self) -> None:
        """From now on a silence longer than ``stall_after`` is a wedge."""
        self.running = True
        self._beat()

    def finish(self) -> None:
        """The loop ended on purpose (shutdown); a loop that dies of an exception never calls this."""
        self.running = False

    def ok(self) -> None:
        """A round succeeded: end the failure streak, if any."""
        if self.failing is not None:
            log.info("%s: recovered after %.1f s (%d failed tries)", self.name, self._elapsed(), self.failures)
            self.failing, self.failures = None, 0
            self.health.metrics.loop_up.labels(self.name).set(1)
            self.health._refresh()
        self._beat()

    def failed(self, exc: BaseException) -> float:
        """A round failed with ``exc``: log it if it starts a streak, and return the pause before the next try."""
        kind = dependency(exc)
        what = kind or type(exc).__name__
        self.health.metrics.loop_failures.labels(self.name).inc()
        if self.failing is None:
            self._since = time.monotonic()
        self.failures += 1
        if what != self.failing:
            if kind is None:
                # Not an outage: most likely a bug, so the traceback is worth one log entry per streak.
                log.error("%s failed; retrying with back-off up to %.0f s", self.name, BACKOFF_MAX, exc_info=exc)
            else:
                log.warning(
                    "%s: %s unreachable (%s: %s); retrying with back-off up to %.0f s",
                    self.name,
                    "Redis" if kind == "redis" else "PostgreSQL",
                    type(exc).__name__,
                    exc,
                    BACKOFF_MAX,
                )
            self.failing = what
            self.health.metrics.loop_up.labels(self.name).set(0)
            self.health._refresh()
        else:
            log.debug("%s failed again (%s: %s)", self.name, type(exc).__name__, exc)
        self._beat()
        return self.backoff()

    def backoff(self) -> float:
        """The pause after the current streak's failures: doubling from ``first_pause``, capped, with jitter."""
        if not self.failures:
            return 0.0
        delay = min(max(BACKOFF_MAX, self.first_pause), self.first_pause * 2.0 ** min(self.failures - 1, 16))
        return delay * random.uniform(0.8, 1.0)

    async def pause(self, seconds: float, stop: asyncio.Event | None = None) -> None:
        """Sleep ``seconds`` (less if ``stop`` is set); the loop is not due until they are over."""
        self.due = time.monotonic() + seconds
        if stop is None:
            await asyncio.sleep(seconds)
        else:
            try:
                await asyncio.wait_for(stop.wait(), seconds)
            except TimeoutError:
                pass
        self._beat()

    def _beat(self) -> None:
        self.due = time.monotonic()
        self.last_beat = time.time()

    def _elapsed(self) -> float:
        return time.monotonic() - self._since
