"""Helpers for the edge tests: records written straight into Redis, events read back from it."""

from __future__ import annotations

import dataclasses
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from starlette.testclient import TestClient

from redirector.app import create_app
from redirector.cache import LinkRecord, PageRecord, encode_page, encode_record
from redirector.events import EVENT_FIELD, Event, decode_batch
from redirector.keys import event_stream_key, invalidation_channel, link_key, page_key
from redirector.rules import parse_rules
from redirector.settings import Settings
from tests.support import free_port

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"
)
MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15"
)
LINUX_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
CHROMEOS = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
SLACKBOT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
CURL = "curl/8.5.0"
BROWSER = {"user-agent": WINDOWS}


def settings_for(env: Mapping[str, str], **overrides: Any) -> Settings:
    """Settings of an edge under test; keyword overrides win over the environment.

    No metrics listener unless asked for (``metrics_port=free_port()``, then :func:`edge_metrics`):
    tests run side by side, and the default port is one for all.
    """
    if "EDGE_METRICS_PORT" not in env:
        overrides.setdefault("metrics_port", 0)
    return dataclasses.replace(Settings.from_env(env), **overrides)


def metrics_url(client: TestClient, path: str = "/metrics") -> str:
    """Where the edge behind ``client`` serves its metrics (its own listener, not the public port)."""
    port = client.app_state["settings"].metrics_port
    assert port, "this edge has no metrics listener: settings_for(env, metrics_port=free_port())"
    return f"http://127.0.0.1:{port}{path}"


def edge_metrics(client: TestClient) -> dict[str, float]:
    """The samples the edge behind ``client`` serves on its metrics listener (see :func:`scrape`)."""
    with urllib.request.urlopen(metrics_url(client), timeout=5) as response:
        return scrape(response.read().decode())


@contextmanager
def edge_client(settings: Settings, **kwargs: Any) -> Iterator[TestClient]:
    """A TestClient that does not follow redirects; leaving it runs the shutdown (final flush)."""
    with TestClient(create_app(settings), follow_redirects=False, **kwargs) as client:
        yield client


def redis_client(env: Mapping[str, str]) -> redis.Redis:
    return redis.Redis.from_url(env["REDIS_URL"])


def new_id() -> str:
    return str(uuid.uuid4())


def put_link(
    r: redis.Redis, prefix: str, code: str, url: str = "https://example.com/", rules: Any = None, **fields: Any
) -> LinkRecord:
    """Write a link record the way the API does (rules normalised by parse_rules) and announce it."""
    raw_rules = tuple(parse_rules(rules)) if rules is not None else ()
    record = LinkRecord(
        id=fields.pop("id", new_id()),
        team_id=fields.pop("team_id", "team-1"),
        code=code,
        url=url,
        raw_rules=raw_rules,
        **fields,
    )
    key = link_key(prefix, code)
    r.set(key, encode_record(record))
    r.publish(invalidation_channel(prefix), key)
    return record


def put_page(r: redis.Redis, prefix: str, handle: str, html: bytes = b"", **fields: Any) -> PageRecord:
    record = PageRecord(
        id=fields.pop("id", new_id()),
        team_id=fields.pop("team_id", "team-1"),
        handle=handle,
        etag=fields.pop("etag", "v1-" + handle),
        html=html
        or f"<!doctype html><html><head><title>{handle}</title></head><body><h1>{handle}</h1></body></html>".encode(),
        **fields,
    )
    key = page_key(prefix, handle)
    r.set(key, encode_page(record))
    r.publish(invalidation_channel(prefix), key)
    return record


def delete_key(r: redis.Redis, prefix: str, key: str) -> None:
    r.delete(key)
    r.publish(invalidation_channel(prefix), key)


def read_events(r: redis.Redis, prefix: str, shards: int = 8) -> list[Event]:
    """Every event in every shard stream, in time order."""
    events: list[Event] = []
    for shard in range(shards):
        for _id, fields in r.xrange(event_stream_key(prefix, shard)):
            for event in decode_batch(fields[EVENT_FIELD]):
                assert event is not None, "the edge wrote an event line that does not decode"
                events.append(event)
    return sorted(events, key=lambda e: e.ts_ms)


@contextmanager
def private_redis(
    *args: str, port: int | None = None, data_dir: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A throwaway redis-server of this test's own on loopback (so it may be stopped or flushed).

    With ``data_dir`` it keeps its RDB there: a ``SAVE`` before it stops is loaded by the next
    server started on the same folder (a restart that keeps the data).
    """
    port = port or free_port()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(data_dir) if data_dir is not None else scratch
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            yield f"redis://127.0.0.1:{port}/0", proc
        finally:
            proc.terminate()
            proc.wait(10)


class TcpGate:
    """A loopback TCP forwarder to ``127.0.0.1:target`` that can be shut and opened again.

    Shut, it cuts every connection it carries and refuses new ones (nothing listens on its port),
    as a Redis that is down would. One client's way to Redis can so stay down while Redis answers
    everyone else: the order in which an edge's connections come back becomes the test's choice.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()

    def __enter__(self) -> TcpGate:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shut()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="tcp-gate", daemon=True).start()

    def shut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            listener.close()
        for conn in conns:
            _close(conn)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # shut meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._conns |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        _close(src)
        _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(0.01)
    return True


def scrape(text: str) -> dict[str, float]:
    """Prometheus samples without the ``pid`` label: ``{'name{label="v"}': value, 'name': value}``."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        name = re.sub(r'pid="\d+",?', "", name).replace("{}", "")
        samples[name] = float(value)
    return samples


def write_mmdb(path: Path, networks: Mapping[str, Mapping[str, Any]], *, ip_version: int = 4) -> None:
    """A real MaxMind DB file (written with ``mmdb-writer``) holding ``networks``' records."""
    writer = MMDBWriter(ip_version=ip_version, database_type="linkedge-test", ipv4_compatible=ip_version == 6)
    for cidr, record in networks.items():
        writer.insert_network(IPSet([cidr]), dict(record))
    writer.to_db_file(str(path))
