"""The edge app's own CPU per cached redirect: the service's host against a team domain, one run.

    .venv/bin/python -m loadtests.domain_path [--requests 30000] [--rounds 3]

Calls the ASGI app in-process (no server, no sockets) with the same link cached for both hosts,
so what differs is only the host lookup. Redis: ``REDIS_URL``, else redis://127.0.0.1:6379/0;
its keys live under a fresh prefix and are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from redis import Redis

from redirector.app import create_app
from redirector.cache import DomainRecord, LinkRecord, encode_domain, encode_record
from redirector.keys import domain_key, link_key
from redirector.settings import Settings

DOMAIN_ID = "00000000-0000-4000-8000-0000000000aa"
HOSTS = {"service's host": b"127.0.0.1:8080", "team domain": b"go.example.test"}
UA = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


async def measure(prefix: str, redis_url: str, requests: int, rounds: int) -> dict[str, list[float]]:
    env = {"KEY_PREFIX": prefix, "PUBLIC_BASE_URL": "http://127.0.0.1", "EDGE_METRICS_PORT": "0"}
    app = create_app(Settings.from_env({**env, "REDIS_URL": redis_url}))
    state: dict[str, Any] = {}
    started = asyncio.Event()

    async def lifespan_receive() -> dict[str, str]:
        if not started.is_set():
            return {"type": "lifespan.startup"}
        await asyncio.Event().wait()
        return {}

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    lifespan = asyncio.create_task(app({"type": "lifespan", "state": state}, lifespan_receive, lifespan_send))
    await started.wait()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        return None

    def scope(host: bytes) -> dict[str, Any]:
        headers = [(b"host", host), (b"user-agent", UA)]
        return {"type": "http", "method": "GET", "path": "/abc", "query_string": b"", "headers": headers,
                "client": ("10.0.0.1", 1234), "state": state, "http_version": "1.1", "scheme": "http"}  # fmt: skip

    results: dict[str, list[float]] = {name: [] for name in HOSTS}
    for host in HOSTS.values():  # warm both paths (local caches, memos)
        for _ in range(2000):
            await app(scope(host), receive, send)
    for _ in range(rounds):
        for name, host in HOSTS.items():
            start = time.perf_counter()
            for _ in range(requests):
                await app(scope(host), receive, send)
            results[name].append((time.perf_counter() - start) / requests * 1e6)
    lifespan.cancel()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadtests.domain_path", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"domainpath{uuid.uuid4().hex[:6]}:"
    redis = Redis.from_url(url)
    record = encode_record(LinkRecord(id="1", team_id="t", code="abc", url="https://example.com/x"))
    redis.set(link_key(prefix, "abc"), record)
    redis.set(link_key(prefix, "abc", DOMAIN_ID), record)
    domain = DomainRecord(id=DOMAIN_ID, team_id="t", hostname="go.example.test")
    redis.set(domain_key(prefix, "go.example.test"), encode_domain(domain))
    try:
        results = asyncio.run(measure(prefix, url, args.requests, args.rounds))
    finally:
        keys = list(redis.scan_iter(match=prefix + "*"))
        if keys:
            redis.delete(*keys)
        redis.close()
    base = sorted(results["service's host"])[len(results["service's host"]) // 2]
    for name, runs in results.items():
        median = sorted(runs)[len(runs) // 2]
        print(f"{name:<16} {median:6.2f} us/request (median of {len(runs)})  {median / base:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
