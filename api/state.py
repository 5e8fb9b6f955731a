"""What the API's lifespan opens and hands to every request: typed lifespan state."""

from __future__ import annotations

from typing import TypedDict

import asyncpg
import dns.asyncresolver
from arq.connections import ArqRedis
from fastapi import Request
from redis.asyncio import Redis

from api.limiter import LocalLimiter
from api.settings import Settings


class State(TypedDict):
    pg: asyncpg.Pool
    redis: Redis
    arq: ArqRedis
    settings: Settings
    limiter: LocalLimiter  # rate limits counted in this process while Redis is unreachable
    resolver: dns.asyncresolver.Resolver  # domain ownership checks (DNS_RESOLVER)


class ApiRequest(Request[State]):
    """``Request[State]`` as a class, which is what FastAPI needs to inject the request.

    Handlers annotate ``request: ApiRequest`` and read ``request.state["pg"]`` with its type.
    """
