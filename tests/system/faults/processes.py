"""Real linkedge processes (edge, worker, API) that a fault test may signal, and their cleanup.

Every process starts in a session of its own. The edge's supervisor puts each uvicorn worker in a
process group of its own too, so a group signal would miss them: :meth:`Proc.kill_all` finds the
whole tree through ``/proc`` and signals every member. Nothing outlives :meth:`Procs.stop_all`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from redirector.serve import count_listeners
from tests.support import ROOT, free_port


def children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids, from ``/proc/*/stat``."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = children_map(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 20.0, detail: Callable[[], str] = str) -> float:
    """Poll ``predicate`` until true; returns the seconds it took, fails naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail()}")
        time.sleep(0.02)
    return time.monotonic() - started


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int = 0  # the public port (edge, API) or the metrics port (worker)
    workers: int = 1  # edge: uvicorn worker processes

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process and every descendant (children first, so none is orphaned mid-way)."""
        tree = descendants(self.pid)
        for pid in [*reversed(tree), self.pid]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGKILL:
            self.popen.wait(10)
            for pid in tree:
                deadline = time.monotonic() + 5
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.01)

    def terminate(self, timeout: float = 20.0, tree: list[int] | None = None) -> int | None:
        """SIGTERM (a graceful stop) and wait; whatever lingers past ``timeout`` is killed.

        ``tree``: the descendants, when they were listed before the signal (once the process is
        gone its children are re-parented and cannot be found from it any more).
        """
        tree = descendants(self.pid) if tree is None else tree
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
            self.kill_all()
        for pid in tree:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return code


@dataclass
class Procs:
    """The processes of one test, all against the same environment."""

    env: Mapping[str, str]
    logs: Path
    started: list[Proc] = field(default_factory=list)
    _count: int = 0

    def _spawn(self, name: str, argv: list[str], extra: Mapping[str, str] | None, port: int, workers: int = 1) -> Proc:
        self._count += 1
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO", **self.env, **(extra or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, popen, log, port, workers)
        self.started.append(proc)
        return proc

    def edge(
        self, name: str, *, workers: int = 1, port: int | None = None, extra: Mapping[str, str] | None = None
    ) -> Proc:
        port = port or free_port()
        argv = [sys.executable, "-m", "redirector.serve", "redirector.app:main", "--factory"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        return self._spawn(name, argv, extra, port, workers)

    def worker(self, name: str, extra: Mapping[str, str] | None = None) -> Proc:
        port = free_port()
        return self._spawn(
            name, [sys.executable, "-m", "workers"], {"WORKER_METRICS_PORT": str(port), **(extra or {})}, port
        )

    def api(self, name: str = "api") -> Proc:
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "api.app:main", "--factory", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--no-access-log"]
        return self._spawn(name, argv, None, port)

    def logs_text(self) -> str:
        return "\n".join(p.tail() for p in self.started)

    def wait_ready(self, *procs: Proc, timeout: float = 45.0) -> None:
        """Edges: every worker process listens; API: /readyz answers 200; worker: its metrics answer."""
        for p in procs:

            def ready(p: Proc = p) -> bool:
                if not p.running():
                    raise AssertionError(f"{p.name} exited with {p.popen.returncode}\n{p.tail()}")
                if p.name.startswith("edge"):
                    return count_listeners(p.port) >= p.workers and http_status(p.port, "/healthz") == 200
                if p.name.startswith("api"):
                    return http_status(p.port, "/readyz") == 200
                return http_status(p.port, "/metrics") == 200

            wait_for(ready, f"{p.name} to be ready", timeout=timeout, detail=p.tail)

    def stop_all(self) -> None:
        trees = {p.pid: descendants(p.pid) for p in self.started}
        for p in self.started:
            if p.running():
                p.popen.send_signal(signal.SIGTERM)
        for p in self.started:
            p.terminate(timeout=15, tree=trees[p.pid])
        self.started.clear()
