"""The Redis-client micro-benchmark's app: one GET per request through a chosen client.

``BENCH_CLIENT`` picks the client (``redis-py``, ``coredis``, ``glide``, ``resp``); the app
answers ``/{code}`` with a constant 302 when the link's record exists and 404 otherwise, so
the only difference from ``loadtests.bare`` is one Redis round trip through that client.
``REDIS_URL`` and ``KEY_PREFIX`` say where the seeded records are.

    BENCH_CLIENT=coredis python -m redirector.serve loadtests.client_apps:main --factory --port 8091
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from redirector.keys import link_key

Getter = Callable[[str], Awaitable[bytes | None]]
CLIENTS = ("redis-py", "coredis", "glide", "resp")
LOCATION = "https://example.com/"


@asynccontextmanager
async def open_client(name: str, url: str) -> AsyncIterator[Getter]:
    """A ``get(key)`` coroutine function backed by client ``name``, open for the block."""
    if name == "redis-py":
        from redis.asyncio import Redis

        client = Redis.from_url(url)
        try:
            yield client.get
        finally:
            await client.aclose()
    elif name == "coredis":
        import coredis

        cd = coredis.Redis.from_url(url)
        async with cd:  # coredis 6 opens its connection pool in its async context
            yield cd.get
    elif name == "glide":
        from glide import GlideClient, GlideClientConfiguration, NodeAddress

        parts = urlsplit(url)
        db = int(parts.path.strip("/") or 0)
        config = GlideClientConfiguration(
            [NodeAddress(parts.hostname or "127.0.0.1", parts.port or 6379)], database_id=db
        )
        gc = await GlideClient.create(config)
        try:

            async def get(key: str) -> bytes | None:
                return await gc.get(key)

            yield get
        finally:
            await gc.close()
    elif name == "resp":
        from redirector.resp.client import RespClient

        rc = RespClient(url, name="linkedge-bench")
        await rc.start()
        try:
            yield rc.get
        finally:
            await rc.aclose()
    else:
        raise ValueError(f"unknown client {name!r}; expected one of {', '.join(CLIENTS)}")


def create_app(client: str, url: str, prefix: str) -> Starlette:
    getters: list[Getter] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_client(client, url) as get:
            getters.append(get)
            yield

    async def redirect(request: Request) -> Response:
        record = await getters[0](link_key(prefix, request.path_params["code"]))
        if record is None:
            return Response(status_code=404)
        return Response(status_code=302, headers={"location": LOCATION})

    return Starlette(routes=[Route("/{code}", redirect, methods=["GET", "HEAD"])], lifespan=lifespan)


def main() -> Starlette:
    """Factory for ``redirector.serve``; reads BENCH_CLIENT, REDIS_URL and KEY_PREFIX."""
    env = os.environ
    return create_app(env["BENCH_CLIENT"], env.get("REDIS_URL", "redis://127.0.0.1:6379/0"), env["KEY_PREFIX"])
