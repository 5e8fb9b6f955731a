"""The worker's Prometheus metrics, in a registry of its own (no process-global state).

Served as Prometheus text at ``http://0.0.0.0:WORKER_METRICS_PORT/metrics`` (default 9100).
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

log = logging.getLogger("linkedge.worker")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("linkedge_rollup_events", "Events applied to PostgreSQL, by kind", ["kind"], registry=r)
        self.bad_lines = Counter("linkedge_rollup_bad_lines", "Event lines skipped as undecodable", registry=r)
        self.batches = Counter("linkedge_rollup_batches", "Roll-up transactions committed", registry=r)
        self.replays = Counter(
            "linkedge_rollup_replays", "Batches dropped because the watermark had moved (replay)", registry=r
        )
        self.duplicates = Counter(
            "linkedge_rollup_duplicate_entries",
            "Stream entries skipped: their edge batch was applied already",
            registry=r,
        )
        self.errors = Counter("linkedge_rollup_errors", "Roll-up steps failed (retried after a pause)", registry=r)
        self.backlog = Gauge(
            "linkedge_stream_backlog", "Stream entries not yet applied, per shard", ["shard"], registry=r
        )
        self.lag = Gauge(
            "linkedge_rollup_lag_seconds",
            "Age of the oldest event not yet applied, per shard (0 when drained)",
            ["shard"],
            registry=r,
        )
        self.last_event = Gauge(
            "linkedge_rollup_last_event_timestamp_seconds", "Time of the newest applied event", registry=r
        )
        self.shards_owned = Gauge("linkedge_rollup_shards_owned", "Stream shards this worker holds", registry=r)
        self.cache_rebuilds = Counter("linkedge_cache_rebuilds", "Full serving-cache rebuilds run", registry=r)
        self.cache_repairs = Counter("linkedge_cache_repairs", "Failed cache writes repaired", registry=r)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, port: int) -> None:
        """Start the HTTP endpoint on a daemon thread; a taken port is logged, not fatal."""
        if port <= 0:
            return
        try:
            self._server, self._thread = start_http_server(port, registry=self.registry)
        except OSError as e:
            log.warning("worker metrics not served on port %d: %s", port, e)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
