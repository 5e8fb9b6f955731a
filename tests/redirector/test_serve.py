"""The multi-process launcher: SO_REUSEPORT balance, supervision, signals, per-worker stats.

A real supervisor runs as a subprocess (``python -m redirector.serve``) serving ``pid_app``
below, which answers each request with the pid of the worker that served it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redirector.serve import count_listeners
from tests.support import ROOT, free_port

APP = "tests.redirector.test_serve:pid_app"


async def pid_app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """A raw ASGI app answering with its worker's pid; supports the lifespan protocol."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def get_pid(port: int) -> int:
    """One request on a brand-new connection (so the kernel picks a listener each time)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        assert response.status == 200
        return int(response.read())
    finally:
        conn.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def launch(log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "redirector.serve", *args], cwd=ROOT, stdout=out, stderr=out)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    stats = tmp_path / "stats"
    stats.mkdir()
    proc = launch(tmp_path / "log", APP, "--port", str(port), "--workers", "2", "--stats-dir", str(stats))
    try:
        assert wait_for(lambda: count_listeners(port) == 2), "two workers never listened"
        yield proc, port, stats
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_connections_spread_over_both_workers_and_sigterm_stops_everything(supervisor):
    proc, port, stats = supervisor
    served = Counter(get_pid(port) for _ in range(200))

    assert len(served) == 2, served
    assert proc.pid not in served  # the supervisor only supervises
    assert sum(served.values()) == 200

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert not any(alive(pid) for pid in served)
    assert count_listeners(port) == 0
    assert "All 2 workers ready" in (stats.parent / "log").read_text()


def test_sigint_is_a_graceful_stop_too(supervisor):
    proc, port, stats = supervisor
    pids = {get_pid(port) for _ in range(50)}

    proc.send_signal(signal.SIGINT)

    assert proc.wait(20) == 0
    # Every worker ran its shutdown (lifespan and stats), not a forced exit.
    assert {int(p.stem) for p in stats.glob("*.json")} >= pids


def test_a_dead_worker_is_replaced(supervisor):
    proc, port, _ = supervisor
    first = {get_pid(port) for _ in range(100)}
    victim = min(first)

    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        # A connection the kernel had queued on the killed worker's socket is reset: not yet.
        try:
            return count_listeners(port) == 2 and len({get_pid(port) for _ in range(40)} - first) == 1
        except ConnectionError:
            return False

    assert wait_for(replaced), "the killed worker was not replaced"
    assert not alive(victim)
    assert proc.poll() is None


def test_sigusr1_writes_each_workers_request_count(supervisor):
    proc, port, stats = supervisor
    served = Counter(get_pid(port) for _ in range(120))

    proc.send_signal(signal.SIGUSR1)

    def written() -> bool:
        return len(list(stats.glob("*.json"))) == 2

    assert wait_for(written)
    counts = {d["pid"]: d["requests"] for d in (json.loads(p.read_text()) for p in stats.glob("*.json"))}
    assert counts == dict(served)
    assert proc.poll() is None  # a stats dump does not stop anything


def test_refuses_a_port_that_is_already_listened_on(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = launch(tmp_path / "log", APP, "--port", str(busy.getsockname()[1]), "--workers", "2")
        assert proc.wait(20) != 0
    assert "Address already in use" in (tmp_path / "log").read_text()


def test_an_app_that_cannot_start_stops_the_supervisor_instead_of_crash_looping(tmp_path):
    proc = launch(tmp_path / "log", "tests.redirector.no_such_module:app", "--port", str(free_port()), "--workers", "2")
    assert proc.wait(30) == 1
    assert "before it was ready" in (tmp_path / "log").read_text()


def free_ports_in_a_row(n: int) -> int:
    """The first of ``n`` consecutive loopback ports nothing listens on."""
    for _ in range(100):
        base = free_port()
        try:
            for offset in range(1, n):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {n} free ports in a row")


def metrics_pid(port: int) -> int | None:
    """The ``pid`` label of the edge process serving metrics on ``port``, None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            found = re.search(rb'pid="(\d+)"', response.read())
    except OSError:
        return None
    return int(found.group(1)) if found else None


def test_each_edge_process_serves_metrics_on_its_own_port(env, tmp_path):
    """EDGE_METRICS_PORT + the process's index: every process can be scraped, a replacement too."""
    port, base = free_port(), free_ports_in_a_row(2)
    with (tmp_path / "log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "redirector.serve", "redirector.app:main", "--factory"]
            + ["--port", str(port), "--workers", "2"],
            cwd=ROOT,
            env={**os.environ, **env, "EDGE_METRICS_PORT": str(base)},
            stdout=out,
            stderr=out,
        )
    try:
        assert wait_for(lambda: None not in (metrics_pid(base), metrics_pid(base + 1))), (tmp_path / "log").read_text()
        pids = [metrics_pid(base), metrics_pid(base + 1)]
        assert pids[0] != pids[1]
        assert {get_public_status(port, "/metrics") for _ in range(10)} == {404}  # on neither process

        victim = pids[1]
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: metrics_pid(base + 1) not in (None, victim)), "the replacement took another port"
        assert metrics_pid(base) == pids[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(40)


def get_public_status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
