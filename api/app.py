"""The management API: FastAPI (Starlette underneath) under /api/v1.

Run with ``uvicorn api.app:main --factory``. The asyncpg pool, the Redis client and the arq pool
open in the lifespan and reach handlers through typed lifespan state (:class:`api.state.State`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response

from api.analytics import routes as analytics_routes
from api.auth import authenticate_request
from api.bio import routes as bio_routes
from api.domains import routes as domain_routes
from api.domains.dns import create_resolver
from api.envelope import BodyLimitMiddleware, RequestIdMiddleware
from api.errors import install_handlers
from api.limiter import LocalLimiter
from api.links import routes as link_routes
from api.openapi import install as install_openapi
from api.settings import Settings
from api.state import ApiRequest, State
from api.stats import routes as stats_routes
from kit.postgres import create_pool
from kit.queue import create_arq_pool
from kit.redis import connect_redis

API_PREFIX = "/api/v1"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        pg = await create_pool(settings.database_url, min_size=settings.pool_min, max_size=settings.pool_max)
        redis = connect_redis(settings.redis_url)
        arq = await create_arq_pool(
            settings.redis_url, queue_name=settings.queue_name, job_namespace=settings.key_prefix
        )
        try:
            yield {
                "pg": pg,
                "redis": redis,
                "arq": arq,
                "settings": settings,
                "limiter": LocalLimiter(),
                "resolver": create_resolver(settings.dns_resolver),
            }
        finally:
            await arq.aclose()
            await redis.aclose()
            await pg.close()

    app = FastAPI(
        title="linkedge API",
        version="1.0.0",
        description="Short links and link-in-bio pages. Bearer keys (`lk_<prefix>.<secret>`) with abilities.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
        # `curl -d '{...}'` without a Content-Type header is still JSON to us.
        strict_content_type=False,
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
        ],
    )
    install_handlers(app, authenticate_first=authenticate_request)
    app.include_router(link_routes.router, prefix=API_PREFIX)
    app.include_router(stats_routes.router, prefix=API_PREFIX)
    app.include_router(analytics_routes.router, prefix=API_PREFIX)
    app.include_router(bio_routes.router, prefix=API_PREFIX)
    app.include_router(domain_routes.router, prefix=API_PREFIX)
    install_openapi(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: ApiRequest) -> Response:
        try:
            await request.state["redis"].ping()
            await request.state["pg"].fetchval("SELECT 1")
        except Exception as e:  # any failure means not ready; say which
            return JSONResponse({"status": "unavailable", "reason": str(e)}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app


def main() -> FastAPI:
    return create_app(Settings.from_env(os.environ))
