"""The worker's Prometheus metrics, in a registry of its own (no process-global state).

Served on ``http://0.0.0.0:WORKER_METRICS_PORT`` (default 9100) from a thread of their own:
Prometheus text at ``/metrics``, and the liveness check at ``/healthz`` (:mod:`workers.health`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

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
        # The loops' health (workers.health sets them).
        self.loop_up = Gauge(
            "linkedge_worker_loop_up",
            "1 when the loop's last round succeeded, 0 while it retries",
            ["loop"],
            registry=r,
        )
        self.loop_heartbeat = Gauge(
            "linkedge_worker_loop_heartbeat_timestamp_seconds",
            "When the loop last reported (a good or a failed round)",
            ["loop"],
            registry=r,
        )
        self.loop_failures = Counter(
            "linkedge_worker_loop_failures", "Rounds of the loop that failed (and were retried)", ["loop"], registry=r
        )
        self.redis_up = Gauge(
            "linkedge_worker_redis_up", "0 while a loop fails because Redis is unreachable", registry=r
        )
        self.postgres_up = Gauge(
            "linkedge_worker_postgres_up", "0 while a loop fails because PostgreSQL is unreachable", registry=r
        )
        self.degraded = Gauge("linkedge_worker_degraded", "1 while any loop is failing (and retrying)", registry=r)
        self.wedged = Gauge(
            "linkedge_worker_wedged", "1 while a loop has not reported for too long (/healthz fails)", registry=r
        )
        self.redis_up.set(1)
        self.postgres_up.set(1)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, port: int, healthz: Callable[[], tuple[bool, str]] | None = None) -> None:
        """Start the HTTP endpoint on a daemon thread; a taken port is logged, not fatal.

        ``healthz`` answers ``/healthz``: (alive, one line saying why); without it, always alive.
        """
        if port <= 0 or self._server is not None:
            return
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != "/healthz":
                return metrics_app(environ, start_response)  # type: ignore[no-any-return]
            alive, text = healthz() if healthz is not None else (True, "ok")
            status = "200 OK" if alive else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")])
            return [text.encode() + b"\n"]

        try:
            server = make_server("0.0.0.0", port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        except OSError as e:
            log.warning("worker metrics not served on port %d: %s", port, e)
            return
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _QuietHandler(WSGIRequestHandler):
    """No access log: probes and scrapes come every few seconds."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
