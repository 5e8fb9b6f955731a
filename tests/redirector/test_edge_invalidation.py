"""Invalidation across two separate edge processes (real uvicorn servers on free ports)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from redirector.keys import link_key, page_key
from tests.redirector.edge_support import (
    delete_key,
    put_link,
    put_page,
    redis_client,
    wait_for_port,
    wait_until,
)
from tests.support import ROOT, free_port

PROPAGATION = 1.0  # seconds: a changed link must stop redirecting the old way within this on every edge


def fetch(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("location") or ""
    finally:
        conn.close()


@pytest.fixture
def edges(env) -> Iterator[list[int]]:
    """Two edge processes sharing Redis, each with its own in-process cache."""
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "redirector.app:main",
                "--factory",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env={**os.environ, **env, "LOCAL_CACHE_TTL": "600"},
            cwd=ROOT,
        )
        for port in ports
    ]
    try:
        for port in ports:
            wait_for_port(port, timeout=30)
            assert wait_until(lambda port=port: fetch(port, "/readyz")[0] == 200, timeout=10)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)


def converge(ports: list[int], path: str, expected: tuple[int, str]) -> float:
    """Seconds until every edge answers ``expected`` for ``path`` (polling), or infinity."""
    start = time.monotonic()
    pending = set(ports)
    while pending and time.monotonic() - start < 5:
        pending = {port for port in pending if fetch(port, path) != expected}
    return time.monotonic() - start if not pending else float("inf")


def test_changed_and_deleted_links_propagate_to_every_edge(env, key_prefix, edges):
    r = redis_client(env)
    put_link(r, key_prefix, "hot", "https://example.com/v1", team_id="t")
    for port in edges:
        assert fetch(port, "/hot") == (302, "https://example.com/v1")
        assert fetch(port, "/hot") == (302, "https://example.com/v1")  # now from the local cache

    put_link(r, key_prefix, "hot", "https://example.com/v2", team_id="t")
    assert converge(edges, "/hot", (302, "https://example.com/v2")) < PROPAGATION

    put_link(r, key_prefix, "hot", "https://example.com/v2", enabled=False)
    assert converge(edges, "/hot", (404, "")) < PROPAGATION

    put_link(r, key_prefix, "hot", "https://example.com/v3")
    assert converge(edges, "/hot", (302, "https://example.com/v3")) < PROPAGATION
    delete_key(r, key_prefix, link_key(key_prefix, "hot"))
    assert converge(edges, "/hot", (404, "")) < PROPAGATION


def test_unknown_code_created_later_and_deleted_page(env, key_prefix, edges):
    r = redis_client(env)
    for port in edges:
        assert fetch(port, "/soon")[0] == 404  # remembered as missing
    put_link(r, key_prefix, "soon", "https://example.com/soon")
    assert converge(edges, "/soon", (302, "https://example.com/soon")) < PROPAGATION

    put_page(r, key_prefix, "shop")
    for port in edges:
        assert fetch(port, "/@shop")[0] == 200
    delete_key(r, key_prefix, page_key(key_prefix, "shop"))
    assert converge(edges, "/@shop", (404, "")) < PROPAGATION
