"""Helpers for the multi-process test: real ``linkedge serve`` processes, their metrics, clicks.

Every process runs in a session of its own, so one that ignores SIGTERM is killed together with
what it started (the edge's supervisor spawns its uvicorn worker); nothing here outlives
:meth:`Processes.stop_all`.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.redirector.edge_support import LINUX_FIREFOX, scrape
from tests.support import ROOT

BROWSER_UA = LINUX_FIREFOX  # not a bot: its clicks count as clicks


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 15.0, detail: Callable[[], str] = str) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` (and ``detail()``, e.g. a log) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail()}")
        time.sleep(0.02)


def metrics(port: int) -> dict[str, float]:
    """Prometheus samples at ``port`` (an edge's EDGE_METRICS_PORT or a worker's WORKER_METRICS_PORT; ``pid``
    labels dropped), or {} when it does not answer. The edge's public port has no /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return scrape(response.read().decode())
    except OSError:
        return {}


def sample_sum(samples: Mapping[str, float], name: str) -> float:
    """Sum of every sample of one metric family, whatever its labels."""
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


def free_port_run(n: int) -> int:
    """The first of ``n`` consecutive free loopback ports: an edge run with ``--workers n`` serves
    the metrics of its process *i* on ``EDGE_METRICS_PORT`` + *i*."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base: int = s.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            for port in range(base + 1, base + n):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"--- {self.name} log ({self.log}) ---\n" + "\n".join(text)


@dataclass
class Processes:
    """``linkedge serve ...`` processes started by one test, stopped by :meth:`stop_all`."""

    env: Mapping[str, str]
    logs: Path
    started: list[Process] = field(default_factory=list)

    def serve(self, what: str, *args: str, name: str, extra: Mapping[str, str] | None = None) -> Process:
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "serve", what, *args],
                cwd=ROOT,
                env={**os.environ, **self.env, **(extra or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, proc, log)
        self.started.append(process)
        return process

    def logs_text(self) -> str:
        return "\n".join(p.tail() for p in self.started)

    def stop_all(self) -> None:
        """SIGTERM each process (a graceful stop), then SIGKILL the whole session of one that lingers."""
        for p in self.started:
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.started:
            try:
                p.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.proc.pid, signal.SIGKILL)  # not reaped yet, so the id is still its session's
                p.proc.wait(5)


@dataclass(frozen=True)
class Target:
    link_id: str
    code: str
    url: str


class Clicks:
    """Follows short links on several edges at once from a thread of its own, counting each redirect.

    Only a 302 to the link's URL counts; anything else is kept in ``errors`` (the test must fail).
    Which link every click follows is drawn from a seeded generator; the edges get as many
    connections each, so they share the clicks.
    """

    def __init__(self, ports: list[int], targets: list[Target], *, seed: int, concurrency: int = 8) -> None:
        self.ports = ports
        self.targets = targets
        self.rng = random.Random(seed)
        self.concurrency = concurrency
        self.sent: Counter[str] = Counter()  # link id -> clicks redirected
        self.per_edge: Counter[int] = Counter()
        self.errors: list[str] = []
        self.total = 0  # clicks redirected so far (read by other threads while clicking)
        self._issued = 0
        self._limit: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self, n: int) -> None:
        """Send exactly ``n`` more clicks, returning when all were answered."""
        self._limit = self._issued + n
        asyncio.run(self._drive())

    def start(self) -> None:
        """Keep clicking in the background until :meth:`stop`."""
        self._limit = None
        self._stop.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._drive()), name="clicks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), "the click driver did not stop"
            self._thread = None

    def _next(self) -> Target | None:
        if self._stop.is_set() or (self._limit is not None and self._issued >= self._limit):
            return None
        self._issued += 1
        return self.rng.choice(self.targets)

    async def _drive(self) -> None:
        """``concurrency`` keep-alive connections per edge, each sending one request at a time."""
        await asyncio.gather(*(self._connection(port) for port in self.ports for _ in range(self.concurrency)))

    async def _connection(self, port: int) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as e:
            self.errors.append(f"{port}: cannot connect: {e}")
            return
        try:
            while (target := self._next()) is not None:
                try:
                    status, location = await asyncio.wait_for(_get(reader, writer, port, target.code), 10)
                except (OSError, EOFError, TimeoutError, ValueError) as e:
                    self.errors.append(f"{port} /{target.code}: {type(e).__name__} {e}")
                    return
                if status == 302 and location == target.url:
                    self.sent[target.link_id] += 1
                    self.per_edge[port] += 1
                    self.total += 1
                else:
                    self.errors.append(f"{port} /{target.code}: {status} {location}")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, code: str) -> tuple[int, str]:
    """One HTTP/1.1 GET on a kept-alive connection: (status, Location header)."""
    writer.write(f"GET /{code} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {BROWSER_UA}\r\n\r\n".encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in head[1:] if h)}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("location", "")


def fetch(port: int, path: str, host: str | None = None) -> tuple[int, str]:
    """One GET over a new connection (so the kernel picks a listening process afresh): (status, Location)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"user-agent": BROWSER_UA} | ({"host": host} if host else {})
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("location") or ""
    finally:
        conn.close()


@dataclass
class ReusePortEdge:
    """One ``linkedge serve edge --workers N``: N server processes, each with a SO_REUSEPORT socket
    of its own on ``port``, so every new connection lands on one of them; process *i* serves its
    /metrics on ``metrics_base`` + *i*.

    :meth:`get` tells which process answered a request: the one whose response count moved (the
    test sends one request at a time). Every 302 answered is kept in ``redirects``, so the clicks
    the workers must count are known exactly, polls included.
    """

    port: int
    metrics_base: int
    processes: int
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)  # (host, path) -> requests answered
    redirects: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (host, path, Location) -> 302s

    def metrics(self, i: int) -> dict[str, float]:
        return metrics(self.metrics_base + i)

    def each(self, name: str) -> list[float]:
        """One metric family's total in each process."""
        return [sample_sum(self.metrics(i), name) for i in range(self.processes)]

    def get(self, host: str, path: str) -> tuple[int, str, int]:
        """GET ``path`` with ``Host: host`` over a new connection: (status, Location, the answering process)."""
        before = self.each("linkedge_edge_requests_total")
        status, location = fetch(self.port, path, host)
        after = self.each("linkedge_edge_requests_total")
        moved = [i for i in range(self.processes) if after[i] != before[i]]
        assert len(moved) == 1 and after[moved[0]] == before[moved[0]] + 1, (before, after)
        self.sent[(host, path)] += 1
        if status == 302:
            self.redirects[(host, path, location)] += 1
        return status, location, moved[0]

    def warm(self, host: str, path: str, expected: tuple[int, str], timeout: float = 5.0) -> None:
        """GET until every process has answered ``expected`` from its in-process cache (a local-cache hit)."""
        warmed: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(warmed) < self.processes:
            hits = self.each("linkedge_edge_local_cache_hits_total")
            status, location, i = self.get(host, path)
            assert (status, location) == expected, f"process {i}: {host}{path} answered {status} {location}"
            if self.each("linkedge_edge_local_cache_hits_total")[i] > hits[i]:
                warmed.add(i)
            assert time.monotonic() < deadline, f"only processes {warmed} served {host}{path} from their cache"

    def converge(self, host: str, path: str, expected: tuple[int, str], since: float, limit: float = 5.0) -> float:
        """Seconds from ``since`` until every process has answered ``expected`` (polling over new
        connections for up to ``limit`` s), or infinity. A process that answered it and then
        answers something else again fails the test."""
        pending, done = set(range(self.processes)), set[int]()
        while pending and time.monotonic() - since < limit:
            status, location, i = self.get(host, path)
            if (status, location) == expected:
                pending.discard(i)
                done.add(i)
            else:
                assert i not in done, f"process {i} answered {expected} for {host}{path}, then {status} {location}"
        return time.monotonic() - since if not pending else float("inf")
