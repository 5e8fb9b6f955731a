"""A real three-master Redis Cluster on loopback, from the machine's ``redis-server``/``redis-cli``.

Each node runs in a temp dir of its own with persistence off (``--save "" --appendonly no``),
so a restart or FLUSHALL loses its data the way a production node without persistence would.
:class:`LocalCluster` is a context manager: leaving it (normally or on a failure) stops every node.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import redis

from tests.redirector.edge_support import wait_for_port
from tests.support import ROOT

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"


def missing_binaries() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    for path in (REDIS_SERVER, REDIS_CLI):
        if not Path(path).exists() and shutil.which(Path(path).name) is None:
            return f"{Path(path).name} is not installed (needed to start a real Redis Cluster)"
    return None


def _binary(path: str) -> str:
    return path if Path(path).exists() else shutil.which(Path(path).name) or path


def free_ports(n: int) -> list[int]:
    """``n`` free loopback ports whose cluster-bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


@dataclass
class LocalCluster:
    """``masters`` cluster nodes on loopback; ``url`` is the ``redis+cluster://`` seed list."""

    masters: int = 3
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    tmp: Path | None = None

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def node_url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="linkedge-cluster-"))
        self.ports = free_ports(self.masters)
        for port in self.ports:
            self.procs.append(self._spawn(port))
        for port in self.ports:
            wait_for_port(port)
        subprocess.run(
            [_binary(REDIS_CLI), "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        assert self.tmp is not None
        node_dir = self.tmp / str(port)
        node_dir.mkdir(exist_ok=True)
        args = [_binary(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir)]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]
        args += ["--save", "", "--appendonly", "no", "--logfile", str(node_dir / "redis.log")]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node says ``cluster_state:ok`` and agrees that all 16384 slots are assigned."""
        deadline = time.monotonic() + timeout
        while True:
            states = [self.cluster_info(p) for p in self.ports]
            if all(s.get("cluster_state") == "ok" and s.get("cluster_slots_ok") == "16384" for s in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster did not reach cluster_state:ok: {states}")
            time.sleep(0.1)

    def cluster_info(self, port: int) -> dict[str, str]:
        try:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
            try:
                text = client.execute_command("CLUSTER", "INFO")
            finally:
                client.close()
        except redis.RedisError:
            return {}
        text = text.decode() if isinstance(text, bytes) else str(text)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def flushall(self) -> None:
        """FLUSHALL on every master: the whole cluster loses its data."""
        for port in self.ports:
            client = redis.Redis(host="127.0.0.1", port=port)
            try:
                client.flushall()
            finally:
                client.close()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float, what: str, *logs: Process) -> float:
    """Poll ``check`` until true; returns the seconds it took. Fails with the processes' logs."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            tails = "\n".join(f"--- {p.what} log ---\n{p.tail()}" for p in logs)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tails}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


class Process:
    """One linkedge process (``linkedge serve api|edge|worker``) with its log in a file.

    ``ready_url`` is polled until it answers 200; :meth:`stop` sends SIGTERM, then SIGKILL.
    """

    def __init__(
        self, what: str, env: dict[str, str], log: Path, *, port: int, workers: int = 1, metrics_port: int = 0
    ) -> None:
        self.what = what
        self.log = log
        self.port = port
        self.metrics_port = metrics_port  # an edge's process i serves /metrics on metrics_port + i (0: none)
        argv = [sys.executable, "-m", "cli.main", "serve", what]
        if what != "worker":
            argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        full_env = {**os.environ, **env, "LOG_LEVEL": "INFO"}
        if what == "worker":
            full_env["WORKER_METRICS_PORT"] = str(port)
        elif what == "edge":
            full_env["EDGE_METRICS_PORT"] = str(metrics_port)  # never the default port, which others may hold
        with log.open("ab") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=out, stderr=out)
        path = "/metrics" if what == "worker" else "/readyz"
        self.ready_url = f"http://127.0.0.1:{port}{path}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.what} not ready after {timeout}s:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextmanager
def stack(env: dict[str, str], tmp: Path) -> Iterator[dict[str, Process]]:
    """API, a caching edge (one process), a non-caching edge (two processes) and a worker; all stopped at the end."""
    api_port, edge_port, direct_port, worker_port, metrics_port = free_ports(5)
    with ExitStack() as stop:
        procs = {
            "api": Process("api", env, tmp / "api.log", port=api_port),
            "edge": Process(
                "edge",
                {**env, "LOCAL_CACHE_TTL": "3600"},
                tmp / "edge.log",
                port=edge_port,
                metrics_port=metrics_port,
            ),
            "direct": Process("edge", {**env, "LOCAL_CACHE": "0"}, tmp / "direct.log", port=direct_port, workers=2),
            "worker": Process(
                "worker",
                {**env, "ROLLUP_IDLE_MS": "50", "CACHE_HEAL_INTERVAL": "0.5"},
                tmp / "worker.log",
                port=worker_port,
            ),
        }
        for proc in procs.values():
            stop.callback(proc.stop)
        for proc in procs.values():
            proc.wait_ready()
        yield procs
