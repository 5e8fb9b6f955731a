"""The redirect edge: short links and bio pages answered from Redis and an in-process cache.

Run it with ``uvicorn redirector.app:main --factory`` (or ``linkedge serve edge``). Connections
open in the lifespan and reach handlers through the typed lifespan state. The public routes
are raw ASGI endpoints (:class:`Endpoint`): the redirect is the hot path and skips building
``Request``/``Response`` objects; the operational routes are ordinary Starlette handlers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from time import monotonic
from typing import Any, TypedDict

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from redirector.cache import DomainRecord
from redirector.domains import (
    AASA,
    ASSETLINKS,
    UNKNOWN,
    host_name,
    site_block,
    site_code,
    site_file,
    site_form,
    site_of,
    site_page,
    site_robots,
    site_root,
    unknown_host,
)
from redirector.edge import CacheNotReady, Edge
from redirector.hit import Hit
from redirector.keys import invalidation_channel
from redirector.links import password_post, serve_code
from redirector.liveness import Liveness
from redirector.ops import MetricsListener
from redirector.pages import block_click, form_post, serve_page
from redirector.pubsub import Subscriber
from redirector.resp import REDIS_ERRORS, Store, create_store
from redirector.settings import Settings
from redirector.views import NO_STORE, error_body

RETRY = [(b"retry-after", b"1")]
PLATFORM_ROBOTS = b"User-agent: *\nDisallow:\n"
PLATFORM_ROBOTS_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
# /metrics is not here: the public port answers it as an unknown code (metrics: redirector.ops).
RESERVED = frozenset({"/healthz", "/readyz", "/robots.txt", "/favicon.ico"})
FAST_METHODS = frozenset({"GET", "HEAD"})
GET_HEAD = ["GET", "HEAD"]
NO_STORE_HEADERS = {"cache-control": "no-store"}


class State(TypedDict):
    settings: Settings
    edge: Edge
    liveness: Liveness


Handler = Callable[[Hit, Receive], Awaitable[None]]


class Endpoint:
    """A public route on the raw ASGI interface, with the lifespan state read from the scope.

    Any Redis failure that escapes the handler becomes a 503 with ``Retry-After``.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: State = scope["state"]
        hit = Hit(state["edge"], scope, send)
        try:
            await self.handler(hit, receive)
        except REDIS_ERRORS:
            hit.edge.metrics.redis_errors += 1
            await hit.fail(503, extra=RETRY)
        except CacheNotReady:
            hit.edge.metrics.not_ready += 1
            await hit.fail(503, extra=RETRY)


class EdgeApp(Starlette):
    """Starlette with a fast path: ``GET|HEAD /{code}`` goes straight to the code endpoint.

    Starlette's router tries each route's regex in turn, and the catch-all ``/{code}`` must come
    after the literal ones; measured, that scan and the middleware stack cost more than the rest
    of a cached redirect. Single-segment paths that are not reserved or ``/@...`` skip both (an
    exception there reaches the server, which answers 500 as Starlette's error middleware would);
    every other request goes through Starlette as usual.
    """

    def __init__(self, *, fast_path: Endpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast_path = fast_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in FAST_METHODS:
            path: str = scope["path"]
            if len(path) > 1 and path[1] != "@" and path.find("/", 1) == -1 and path not in RESERVED:
                scope["path_params"] = {"code": path[1:]}
                return await self.fast_path(scope, receive, send)
        await super().__call__(scope, receive, send)


async def code_route(hit: Hit, receive: Receive) -> None:
    """``/{code}``: a short link, or a bio page when the request is for the bio host."""
    name: str = hit.scope["path_params"]["code"]
    method = hit.scope["method"]
    edge = hit.edge
    host = None if edge.forwarded_host else edge.hosts.get(hit.headers.get(b"host", b""))
    if host is None:
        host = host_name(hit)
    if host:  # a team domain (or an unknown host)
        entry = edge.sites.get(host)
        if entry is not None and entry[0] > monotonic():
            return await site_code(hit, receive, entry[1], name)
        site = await site_of(hit, host)
        if site is UNKNOWN:
            return await unknown_host(hit)
        if isinstance(site, DomainRecord):
            return await site_code(hit, receive, site, name)
    if hit.edge.is_bio_host(hit.headers.get(b"host", b"")):
        if method == "POST":
            return await hit.fail(405, extra=[(b"allow", b"GET, HEAD")])
        return await serve_page(hit, name)
    if method == "POST":
        return await password_post(hit, receive, name)
    await serve_code(hit, name)


async def team_site(hit: Hit) -> DomainRecord | None | bool:
    """The request's team domain; None for the service's own; True once an unknown host was answered."""
    host = host_name(hit)
    if not host:
        return None
    site = await site_of(hit, host)
    if isinstance(site, DomainRecord) or site is None:
        return site
    await unknown_host(hit)
    return True


async def root_route(hit: Hit, receive: Receive) -> None:
    """``/``: a team domain's bio page or root fallback; nothing on the service's own domain."""
    site = await team_site(hit)
    if isinstance(site, DomainRecord):
        return await site_root(hit, site)
    if site is None:
        await hit.fail(404)


async def robots_route(hit: Hit, receive: Receive) -> None:
    site = await team_site(hit)
    if isinstance(site, DomainRecord):
        return await site_robots(hit, site)
    if site is None:
        await hit.respond(200, PLATFORM_ROBOTS_HEADERS, PLATFORM_ROBOTS)


async def well_known_route(hit: Hit, receive: Receive) -> None:
    """The deep-link files of a team domain (``/.well-known/...``)."""
    site = await team_site(hit)
    if isinstance(site, DomainRecord):
        return await site_file(hit, site, hit.scope["path"])
    if site is None:
        await hit.fail(404)


async def page_route(hit: Hit, receive: Receive) -> None:
    site = await team_site(hit)
    if isinstance(site, DomainRecord):
        return await site_page(hit, site, hit.scope["path_params"]["handle"])
    if site is None:
        await serve_page(hit, hit.scope["path_params"]["handle"])


async def block_route(hit: Hit, receive: Receive) -> None:
    params = hit.scope["path_params"]
    site = await team_site(hit)
    if isinstance(site, DomainRecord) and hit.scope["path"].startswith("/@"):
        return await site_block(hit, site, params["handle"], params["block_id"])
    if site is not None:
        return None if site is True else await hit.fail(404)
    if not hit.scope["path"].startswith("/@") and not hit.edge.is_bio_host(hit.headers.get(b"host", b"")):
        return await hit.fail(404)
    await block_click(hit, params["handle"], params["block_id"])


async def form_route(hit: Hit, receive: Receive) -> None:
    params = hit.scope["path_params"]
    site = await team_site(hit)
    if isinstance(site, DomainRecord) and hit.scope["path"].startswith("/@"):
        return await site_form(hit, receive, site, params["handle"], params["block_id"])
    if site is not None:
        return None if site is True else await hit.fail(404)
    if not hit.scope["path"].startswith("/@") and not hit.edge.is_bio_host(hit.headers.get(b"host", b"")):
        return await hit.fail(404)
    await form_post(hit, receive, params["handle"], params["block_id"])


async def healthz(request: Request[State]) -> Response:
    """Alive: the process answers, and no Redis client of it is stuck while Redis answers others.

    A Redis outage alone keeps this 200 (see :mod:`redirector.liveness`).
    """
    if await request.state["liveness"].wedged():
        return PlainTextResponse("unavailable", 503, headers=NO_STORE_HEADERS)
    return PlainTextResponse("ok", headers=NO_STORE_HEADERS)


async def readyz(request: Request[State]) -> Response:
    """Ready when Redis answers PING within a second; the body carries no error detail."""
    edge = request.state["edge"]
    try:
        await asyncio.wait_for(edge.store.execute("PING"), 1.0)
    except (*REDIS_ERRORS, TimeoutError):
        return JSONResponse({"status": "unavailable"}, 503, headers=NO_STORE_HEADERS)
    return JSONResponse({"status": "ready"}, headers=NO_STORE_HEADERS)


async def favicon(request: Request[State]) -> Response:
    return Response(status_code=404, headers={"cache-control": "public, max-age=86400"})


async def http_error(request: Request[State], exc: Exception) -> Response:
    """Router-level 404/405 in the edge's own error format."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    request.state["edge"].metrics.count(status)
    content_type, body = error_body(status, request.headers.get("accept", "").encode("latin-1"))
    headers = {"content-type": content_type.decode(), "cache-control": NO_STORE.decode()}
    if isinstance(exc, HTTPException) and exc.headers:
        headers.update(exc.headers)  # Allow on a 405
    return Response(body, status, headers=headers)


def create_app(settings: Settings, *, store_factory: Callable[[Settings], Awaitable[Store]] | None = None) -> Starlette:
    """Build the edge for ``settings``; Redis connections and the metrics listener open when the lifespan starts.

    ``store_factory`` swaps the hot-path Redis client (anything that fits :class:`~redirector.resp.client.Store`);
    the default is :func:`~redirector.resp.create_store`'s client for ``REDIS_URL``.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        store = await (store_factory(settings) if store_factory else create_store(settings.redis_url))
        edge = Edge(settings, store)
        metrics = MetricsListener(edge.metrics.render, ask=edge.may_serve)
        if settings.metrics_port:
            await metrics.start(settings.metrics_host, settings.metrics_port)
        subscriber = edge.subscriber = Subscriber(
            settings.redis_url,
            invalidation_channel(settings.key_prefix),
            edge.invalidate,
            edge.reset,
            # A cluster store names its current masters (any node hears every PUBLISH); others name none.
            addresses=getattr(store, "known_addresses", None),
        )
        # Subscribe before serving: a record cached before the subscription could go stale unnoticed.
        await subscriber.start()
        edge.emitter.start()
        liveness = Liveness(settings.liveness_bound, [store, subscriber])
        try:
            yield {"settings": settings, "edge": edge, "liveness": liveness}
        finally:
            await metrics.aclose()
            await subscriber.aclose()
            await edge.emitter.aclose()
            await store.aclose()
            edge.geo.close()

    code_endpoint = Endpoint(code_route)
    routes = [
        Route("/healthz", healthz, methods=GET_HEAD),
        Route("/readyz", readyz, methods=GET_HEAD),
        Route("/", Endpoint(root_route), methods=GET_HEAD),
        Route("/robots.txt", Endpoint(robots_route), methods=GET_HEAD),
        Route(AASA, Endpoint(well_known_route), methods=GET_HEAD),
        Route(ASSETLINKS, Endpoint(well_known_route), methods=GET_HEAD),
        Route("/favicon.ico", favicon, methods=GET_HEAD),
        Route("/@{handle}", Endpoint(page_route), methods=GET_HEAD),
        Route("/@{handle}/b/{block_id}", Endpoint(block_route), methods=GET_HEAD),
        Route("/@{handle}/f/{block_id}", Endpoint(form_route), methods=["POST"]),
        Route("/{code}", code_endpoint, methods=["GET", "HEAD", "POST"]),
        Route("/{handle}/b/{block_id}", Endpoint(block_route), methods=GET_HEAD),
        Route("/{handle}/f/{block_id}", Endpoint(form_route), methods=["POST"]),
    ]
    handlers = {404: http_error, 405: http_error}
    return EdgeApp(
        fast_path=code_endpoint,
        routes=routes,
        lifespan=lifespan,
        exception_handlers=handlers,
    )


def main() -> Starlette:
    """Factory for ``uvicorn redirector.app:main --factory``: settings from the environment."""
    return create_app(Settings.from_env(os.environ))
