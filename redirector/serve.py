"""Run an ASGI app in N uvicorn worker processes that each own a SO_REUSEPORT socket.

``uvicorn --workers N`` shares one listening socket between the workers, and whichever
process wakes first accepts: under load one worker sometimes takes every connection
(3 of 21 benchmark runs here). Here each worker binds its own socket to the same
address with SO_REUSEPORT, so the kernel hashes every new connection across the
listening sockets and balance never depends on wake-up luck. A worker only listens
once its lifespan has started, so it gets no connection before it can answer.

The parent process only supervises: it restarts a worker that dies after it was ready,
gives up if one dies before it was ever ready (a broken app would crash-loop), turns
SIGINT/SIGTERM into a graceful SIGTERM for every worker (a second one kills them), and
forwards SIGUSR1, on which each worker writes its request count when ``stats_dir`` is set.
Each worker gets its slot's index (0 .. N-1) in ``LINKEDGE_PROCESS_INDEX``, and a replacement the
index of the one it replaces: the edge adds it to ``EDGE_METRICS_PORT``, so every process has
a metrics port of its own.

    python -m redirector.serve redirector.app:main --factory --port 8080 --workers 2
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from redirector.settings import PROCESS_INDEX_ENV

logger = logging.getLogger("uvicorn.error")

# The hot path's server settings; callers may override any of them through **options.
DEFAULTS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "access_log": False,
    "lifespan": "on",
    # The edge reads X-Forwarded-For itself, and only from TRUSTED_PROXIES.
    "proxy_headers": False,
}
RESTART_DELAY = 0.5  # seconds between a worker's death and its replacement
KILL_AFTER = 30.0  # seconds a worker gets to finish after SIGTERM before SIGKILL


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process needs; picklable, since workers are spawned."""

    app: str
    factory: bool
    host: str
    port: int
    options: dict[str, Any] = field(default_factory=dict)
    stats_dir: str | None = None


def bind_reuseport(host: str, port: int) -> socket.socket:
    """A bound, not yet listening, TCP socket that shares its address with its siblings."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise RuntimeError("SO_REUSEPORT is not available on this platform")
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def check_port_free(host: str, port: int) -> int:
    """Fail early if anything listens on the address; returns the port (a free one for 0).

    Binding without SO_REUSEPORT fails when any socket listens there, including another
    SO_REUSEPORT server of the same user that would otherwise silently share the traffic.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        bound: int = probe.getsockname()[1]
        return bound


def count_listeners(port: int) -> int:
    """How many sockets listen on ``port`` (any address), from /proc/net/tcp{,6}; Linux only.

    With SO_REUSEPORT every ready worker has its own, so this equals the ready workers.
    """
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = TCP_LISTEN
                total += 1
    return total


class WorkerServer(uvicorn.Server):
    """A uvicorn server that reports readiness and its request count to the supervisor."""

    def __init__(self, config: uvicorn.Config, ready: Connection, stats_dir: str | None) -> None:
        super().__init__(config)
        self.ready = ready
        self.stats_dir = stats_dir
        self.parent = os.getppid()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.send(os.getpid())

    async def on_tick(self, counter: int) -> bool:
        # An orphaned worker (supervisor SIGKILLed) must not keep serving forever.
        if os.getppid() != self.parent:
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets=sockets)
        self.write_stats()

    def write_stats(self, *_: object) -> None:
        """Write ``{"pid": ..., "requests": ...}`` to ``<stats_dir>/<pid>.json`` (atomically)."""
        if self.stats_dir is None:
            return
        path = Path(self.stats_dir) / f"{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "requests": self.server_state.total_requests}))
        tmp.replace(path)


def _worker(spec: WorkerSpec, slot: int, ready: Connection) -> None:
    # Read by the app factory (redirector.settings.process_metrics_port), which runs after this.
    os.environ[PROCESS_INDEX_ENV] = str(slot)
    # Own process group: a terminal's Ctrl-C reaches only the supervisor, which sends one
    # SIGTERM. A second SIGINT would make uvicorn skip the lifespan shutdown (event flush).
    os.setpgrp()
    # SIGUSR1 would kill a worker that has not installed its handler yet.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    sock = bind_reuseport(spec.host, spec.port)
    config = uvicorn.Config(spec.app, factory=spec.factory, host=spec.host, port=spec.port, **spec.options)
    server = WorkerServer(config, ready, spec.stats_dir)
    signal.signal(signal.SIGUSR1, server.write_stats)
    server.run(sockets=[sock])


class Supervisor:
    """Keeps ``workers`` processes running until told to stop."""

    def __init__(self, spec: WorkerSpec, workers: int) -> None:
        self.spec = spec
        self.workers = workers
        self.context = multiprocessing.get_context("spawn")
        self.procs: dict[int, BaseProcess] = {}  # slot -> process
        self.pipes: dict[int, Connection] = {}  # slot -> readiness pipe
        self.ready: set[int] = set()  # slots whose current process has started listening
        self.stopping_since: float | None = None
        self.failed = False

    def start(self, slot: int) -> None:
        reader, writer = self.context.Pipe(duplex=False)
        proc = self.context.Process(target=_worker, args=(self.spec, slot, writer), name=f"worker-{slot}", daemon=False)
        proc.start()
        writer.close()
        self.procs[slot], self.pipes[slot] = proc, reader
        self.ready.discard(slot)

    def signal_all(self, sig: int, *, ready_only: bool = False) -> None:
        for slot, proc in self.procs.items():
            if ready_only and slot not in self.ready:
                continue
            if proc.pid is not None and proc.is_alive():
                try:
                    os.kill(proc.pid, sig)
                except ProcessLookupError:
                    pass

    def stop(self) -> None:
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
            self.signal_all(signal.SIGTERM)
        else:
            logger.warning("Second stop signal: killing workers")
            self.signal_all(signal.SIGKILL)

    def on_signal(self, sig: int) -> None:
        if sig in (signal.SIGINT, signal.SIGTERM):
            self.stop()
        elif sig == signal.SIGUSR1:
            self.signal_all(signal.SIGUSR1, ready_only=True)

    def on_exit(self, slot: int) -> None:
        proc = self.procs.pop(slot)
        self.pipes.pop(slot).close()
        proc.join()
        was_ready = slot in self.ready
        self.ready.discard(slot)
        if self.stopping_since is not None:
            return
        if not was_ready:
            logger.error("Worker %s exited with %s before it was ready; stopping", proc.pid, proc.exitcode)
            self.failed = True
            self.stop()
            return
        logger.warning("Worker %s exited with %s; restarting it", proc.pid, proc.exitcode)
        time.sleep(RESTART_DELAY)
        self.start(slot)

    def on_ready(self, slot: int, conn: Connection) -> None:
        if self.pipes.get(slot) is not conn:
            return  # that process was already replaced
        try:
            pid = conn.recv()
        except EOFError:
            return  # the worker died; its sentinel reports it
        self.ready.add(slot)
        logger.info("Worker %s listening", pid)
        if len(self.ready) == self.workers:
            url = f"http://{self.spec.host}:{self.spec.port}"
            logger.info("All %d workers ready on %s (SO_REUSEPORT)", self.workers, url)

    def run(self) -> int:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
        # The handlers only need to exist; the signal numbers arrive through the wakeup fd.
        old_handlers = {sig: signal.signal(sig, _ignore) for sig in handled}
        try:
            for slot in range(self.workers):
                self.start(slot)
            while self.procs:
                self.step(wake_r)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            wake_r.close()
            wake_w.close()
        logger.info("Supervisor %d stopped", os.getpid())
        return 1 if self.failed else 0

    def step(self, wake_r: socket.socket) -> None:
        timeout = None
        if self.stopping_since is not None:
            timeout = max(0.0, self.stopping_since + KILL_AFTER - time.monotonic())
            if timeout == 0.0:
                logger.warning("Workers still running %.0fs after SIGTERM: killing them", KILL_AFTER)
                self.signal_all(signal.SIGKILL)
                timeout = 1.0
        sentinels = {proc.sentinel: slot for slot, proc in self.procs.items()}
        pipes = {conn: slot for slot, conn in self.pipes.items() if slot not in self.ready}
        events = wait([wake_r, *sentinels, *pipes], timeout=timeout)
        if wake_r in events:
            try:
                signums = wake_r.recv(64)
            except BlockingIOError:
                signums = b""
            for sig in signums:
                self.on_signal(sig)
        # Readiness before exits, so a worker that started and then died is restarted, not fatal.
        for obj in events:
            if isinstance(obj, Connection):
                self.on_ready(pipes[obj], obj)
        for obj in events:
            if isinstance(obj, int):
                self.on_exit(sentinels[obj])


def _ignore(signum: int, frame: FrameType | None) -> None:
    pass


def run(
    app: str,
    *,
    factory: bool = False,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 2,
    stats_dir: str | None = None,
    **options: Any,
) -> int:
    """Serve ``app`` ("module:attr") from ``workers`` processes; returns the exit status.

    ``options`` are extra ``uvicorn.Config`` keyword arguments, applied over ``DEFAULTS``
    (uvloop, httptools, no access log, lifespan on, no proxy headers). With ``stats_dir``,
    each worker writes its request count to ``<stats_dir>/<pid>.json`` on shutdown and on
    SIGUSR1 to the supervisor. Blocks until SIGINT/SIGTERM, or until a worker fails to start.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    log_level = options.get("log_level", "info")
    if not logging.getLogger("uvicorn").handlers:
        logging.config.dictConfig(LOGGING_CONFIG)
        logger.setLevel(log_level.upper() if isinstance(log_level, str) else log_level)
    try:
        port = check_port_free(host, port)
    except OSError as exc:
        logger.error("Cannot listen on %s:%d: %s", host, port, exc)
        return 1
    spec = WorkerSpec(app, factory, host, port, {**DEFAULTS, **options}, stats_dir)
    logger.info("Supervisor %d starting %d workers for %s on %s:%d", os.getpid(), workers, app, host, port)
    return Supervisor(spec, workers).run()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m redirector.serve APP [--factory] [--host H] [--port P] [--workers N]``."""
    parser = argparse.ArgumentParser(prog="python -m redirector.serve", description=__doc__.split("\n")[0])
    parser.add_argument("app", help="ASGI app as module:attribute")
    parser.add_argument("--factory", action="store_true", help="APP is a factory returning the app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--stats-dir", help="write per-worker request counts here (on exit and on SIGUSR1)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return run(
        args.app,
        factory=args.factory,
        host=args.host,
        port=args.port,
        workers=args.workers,
        stats_dir=args.stats_dir,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    sys.exit(main())
