"""Per-process counters, rendered in the Prometheus text format.

Plain integer attributes rather than ``prometheus_client`` objects: the hot path bumps them on
every request, and an attribute increment is several times cheaper than a locked ``inc()``.
Every sample carries a ``pid`` label, since each edge process keeps its own counters.
"""

from __future__ import annotations

import os
from collections.abc import Callable


class Metrics:
    """Counters of one edge process; gauges are read from callbacks at scrape time."""

    def __init__(self) -> None:
        self.responses: dict[int, int] = {}
        self.redirects = 0
        self.events_dropped = 0
        self.events_flushed = 0
        self.event_batches = 0
        self.event_flush_errors = 0
        self.redis_errors = 0
        self.record_errors = 0
        self.invalidations = 0
        self.stale_served = 0
        self.not_ready = 0  # misses answered 503 because Redis holds no cache yet (edge.CacheNotReady)
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.counters: dict[str, tuple[str, Callable[[], float]]] = {}

    def count(self, status: int) -> None:
        responses = self.responses
        responses[status] = responses.get(status, 0) + 1

    def render(self) -> bytes:
        pid = f'pid="{os.getpid()}"'
        out: list[str] = []

        def family(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                label_text = f"{pid},{labels}" if labels else pid
                out.append(f"{name}{{{label_text}}} {value:g}")

        family(
            "linkedge_edge_requests_total",
            "counter",
            "HTTP responses by status code.",
            [(f'status="{code}"', n) for code, n in sorted(self.responses.items())],
        )
        family("linkedge_edge_redirects_total", "counter", "Redirects answered.", [("", self.redirects)])
        family(
            "linkedge_edge_events_flushed_total", "counter", "Events appended to Redis.", [("", self.events_flushed)]
        )
        family("linkedge_edge_event_batches_total", "counter", "XADDs of event batches.", [("", self.event_batches)])
        family(
            "linkedge_edge_events_dropped_total",
            "counter",
            "Events dropped because the buffer was full.",
            [("", self.events_dropped)],
        )
        family("linkedge_edge_redis_errors_total", "counter", "Failed Redis commands.", [("", self.redis_errors)])
        family(
            "linkedge_edge_cache_not_ready_total",
            "counter",
            "Misses answered 503 because Redis held no cache yet (before a rebuild).",
            [("", self.not_ready)],
        )
        family(
            "linkedge_edge_record_errors_total",
            "counter",
            "Cache records that failed to decode.",
            [("", self.record_errors)],
        )
        family(
            "linkedge_edge_invalidations_total",
            "counter",
            "Invalidation messages received.",
            [("", self.invalidations)],
        )
        for name, (help_, read) in sorted(self.counters.items()):
            family(name, "counter", help_, [("", read())])
        for name, (help_, read) in sorted(self.gauges.items()):
            family(name, "gauge", help_, [("", read())])
        return ("\n".join(out) + "\n").encode()
