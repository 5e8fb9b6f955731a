"""What the benchmarks share: servers under ``redirector.serve``, wrk runs, seeded links.

Everything runs on loopback and is bounded in time; every process started here is stopped
and every Redis key written here (one dedicated prefix) is deleted by the caller's cleanup.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, cast

import redis

from redirector.cache import DomainRecord, LinkRecord, encode_domain, encode_record
from redirector.keys import domain_key, link_key
from redirector.rules import parse_rules
from redirector.serve import count_listeners

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "random_paths.lua"
HOST = "127.0.0.1"
CODE_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

# A few shapes of routing rules, so the cached path also evaluates rules some of the time.
RULE_SETS = [
    [{"url": "https://example.de/", "conditions": {"country": ["DE", "AT", "CH"]}}],
    [{"url": "https://m.example.com/", "conditions": {"device": ["ios", "android"]}}],
    [
        {"url": "https://fr.example.com/", "conditions": {"language": ["fr"]}},
        {"split": [{"url": "https://a.example.com/", "weight": 50}, {"url": "https://b.example.com/", "weight": 50}]},
    ],
]


class BenchError(RuntimeError):
    """The benchmark cannot go on (a server did not start, wrk failed, Redis is down)."""


def run_main(main: Callable[[], int], name: str) -> NoReturn:
    """A load tool's ``__main__``: exit with its status, 130 on Ctrl-C, one line on a BenchError."""
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BenchError as e:
        raise SystemExit(f"{name}: {e}") from None


def ensure_wrk() -> str:
    """Path of wrk, installing Debian's package first if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it (apt-get install -y wrk)", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "wrk"]).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-q"], check=False)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "wrk"], check=False)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is not installed and apt-get could not install it")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def connect_redis(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as e:
        raise BenchError(f"Redis at {url} does not answer ({e}); set REDIS_URL") from e
    return client


def new_prefix() -> str:
    return f"bench{secrets.token_hex(3)}:"


def random_code(rng: secrets.SystemRandom, length: int = 7) -> str:
    return "".join(rng.choice(CODE_ALPHABET) for _ in range(length))


def seed_links(client: redis.Redis, prefix: str, count: int, rules_every: int = 10) -> list[str]:
    """Write ``count`` link records straight into the serving cache; returns their codes.

    Every ``rules_every``-th link carries routing rules (cycling through ``RULE_SETS``).
    """
    rng = secrets.SystemRandom()
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(random_code(rng))
    ordered = sorted(codes)
    normalised = [tuple(parse_rules(rules)) for rules in RULE_SETS]
    pipe = client.pipeline(transaction=False)
    for i, code in enumerate(ordered):
        raw_rules = normalised[(i // rules_every) % len(normalised)] if i % rules_every == 0 else ()
        record = LinkRecord(
            id=f"bench-{i}",
            team_id="bench-team",
            code=code,
            url=f"https://example.com/landing/{code}",
            raw_rules=raw_rules,
        )
        pipe.set(link_key(prefix, code), encode_record(record))
        if len(pipe) >= 1000:
            pipe.execute()
    pipe.execute()
    return ordered


BENCH_DOMAIN_ID = "00000000-0000-4000-8000-00000000be0c"


def seed_domain(client: redis.Redis, prefix: str, hostname: str, codes: list[str]) -> None:
    """A verified team domain ``hostname`` with a copy of each of ``codes``'s records on it."""
    domain = DomainRecord(id=BENCH_DOMAIN_ID, team_id="bench-team", hostname=hostname)
    pipe = client.pipeline(transaction=False)
    pipe.set(domain_key(prefix, hostname), encode_domain(domain))
    for key, value in zip(codes, client.mget([link_key(prefix, c) for c in codes]), strict=True):
        pipe.set(link_key(prefix, key, BENCH_DOMAIN_ID), value)
        if len(pipe) >= 1000:
            pipe.execute()
    pipe.execute()


def delete_prefix(client: redis.Redis, prefix: str, pattern: str = "*") -> int:
    """Delete every key under ``prefix`` (matching ``pattern`` after it); returns how many."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}{pattern}", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += cast(int, client.unlink(*batch))
            batch.clear()
    if batch:
        deleted += cast(int, client.unlink(*batch))
    return deleted


def write_paths(directory: Path, codes: list[str]) -> Path:
    path = directory / "paths.txt"
    path.write_text("".join(f"/{code}\n" for code in codes))
    return path


@dataclass
class Server:
    """One app under ``python -m redirector.serve`` in its own session, with per-worker stats."""

    name: str
    app: str
    workers: int
    env: Mapping[str, str] = field(default_factory=dict)
    factory: bool = True
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="linkedge-bench-")))

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def stats_dir(self) -> Path:
        return self.workdir / "stats"

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"

    def start(self, timeout: float = 30.0) -> None:
        self.port = free_port()
        self.stats_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "redirector.serve", self.app, "--host", HOST, "--port", str(self.port)]
        args += ["--workers", str(self.workers), "--stats-dir", str(self.stats_dir), "--log-level", "warning"]
        if self.factory:
            args.append("--factory")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                args, cwd=ROOT, env={**os.environ, **self.env}, stdout=out, stderr=out, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while count_listeners(self.port) < self.workers:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"{self.name} did not start; its log:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def snapshot(self, timeout: float = 10.0) -> dict[int, int]:
        """Requests served so far by each worker (pid -> count), via SIGUSR1 to the supervisor."""
        assert self.proc is not None
        for old in self.stats_dir.glob("*.json"):
            old.unlink()
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while len(files := list(self.stats_dir.glob("*.json"))) < self.workers:
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: only {len(files)} of {self.workers} workers reported their counts")
            time.sleep(0.02)
        counts = (json.loads(f.read_text()) for f in files)
        return {c["pid"]: c["requests"] for c in counts}

    def stop(self, timeout: float = 40.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its workers are orphans then, and exit
                self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors plus non-2xx/3xx answers

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(
    wrk: str,
    url: str,
    paths: Path,
    *,
    seconds: float,
    connections: int,
    threads: int,
    timeout: float = 2.0,
    host: str | None = None,
) -> WrkResult:
    """One bounded wrk run against random paths (with ``Host: host``); raises if wrk fails or prints no summary."""
    args = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        f"{max(1, round(timeout))}s",
    ]
    if host is not None:
        args += ["-H", f"Host: {host}"]
    args += ["--latency", "-s", str(LUA), url]
    proc = subprocess.Popen(
        args, env={**os.environ, "BENCH_PATHS": str(paths)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{text[-2000:]}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=errors,
    )


def check_redirect(server: Server, path: str, location: str | None = None, host: str | None = None) -> None:
    """One request before measuring: the app must answer ``path`` with a redirect (to ``location``)."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    got = response.getheader("location")
    if response.status not in (301, 302, 307, 308) or (location is not None and got != location):
        raise BenchError(
            f"{server.name}: {path} answered {response.status} (location {got!r}), expected a redirect"
            + (f" to {location}" if location else "")
            + f"; its log:\n{server.log.read_text()[-3000:]}"
        )


class Run:
    """Owns what a benchmark starts: servers, a Redis key prefix, a temp dir; undone on exit.

    SIGTERM and SIGHUP become KeyboardInterrupt like Ctrl-C, so cleanup runs for all three.
    """

    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client
        self.prefix = new_prefix()
        self.workdir = Path(tempfile.mkdtemp(prefix="linkedge-bench-"))
        self.servers: list[Server] = []
        self._old: dict[int, object] = {}

    def __enter__(self) -> Run:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old[sig] = signal.signal(sig, _interrupt)
        return self

    def server(self, name: str, app: str, workers: int, env: Mapping[str, str] | None = None) -> Server:
        server = Server(name, app, workers, env={"KEY_PREFIX": self.prefix, **(env or {})})
        self.servers.append(server)
        server.start()
        return server

    def __exit__(self, *exc: object) -> None:
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # let cleanup finish
        try:
            for server in self.servers:
                server.cleanup()
            deleted = delete_prefix(self.redis, self.prefix)
            shutil.rmtree(self.workdir, ignore_errors=True)
            print(f"cleaned up: {len(self.servers)} server(s) stopped, {deleted:,} Redis keys under {self.prefix!r}")
        finally:
            signal.signal(signal.SIGINT, old_int)
            for sig, handler in self._old.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]
            self.redis.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
