"""Bearer keys, abilities, team scoping and per-key rate limits.

A key is ``lk_<prefix>.<secret>``: the prefix finds the row, only SHA-256 of the secret is
stored, compared in constant time. Keys are random 190-bit secrets, so a fast hash is enough
(no password stretching needed).

Rate limits are fixed one-minute windows in Redis: per key (the plan's requests per minute), and
per client address for failed authentications (:data:`AUTH_FAILURES_PER_MINUTE`), so guessing
keys is throttled before it reaches the database. When Redis is unreachable the API stays up
(fail open) but each process keeps counting in memory (:class:`LocalLimiter`) against the same
limits, so an outage cannot turn into an unlimited flood.

A key's ``last_used_at`` is written at most once a minute per key, off the request path: a
successful authentication sets a 60-second Redis gate (``SET NX EX``) and, when this request set
it, schedules the UPDATE as a background task that the request never awaits. A failed write is
logged and forgotten (the next one is a minute later). While Redis is unreachable each process
gates in memory instead (:class:`UseGate`), so the column is still written about once a minute.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.envelope import RateLimit
from api.errors import Forbidden, RateLimited, Unauthorized
from api.limiter import LocalLimiter
from api.plans import Plan, get_plan
from api.settings import Settings
from api.state import ApiRequest
from redirector.keys import api_rate_key, auth_failures_key, key_used_gate_key

ABILITIES = (
    "links:read",
    "links:write",
    "links:analytics:read",
    "bio:read",
    "bio:write",
    "bio:analytics:read",
    "bio:submissions:read",  # form submissions hold visitors' emails: their own ability
    "domains:read",
    "domains:write",
)
KEY_SCHEME = "lk_"
AUTH_FAILURES_PER_MINUTE = 30  # per client address
_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
LAST_USED_EVERY_S = 60  # at most one last_used_at write per key in this many seconds
LAST_USED_TIMEOUT_S = 10.0  # a write still waiting on PostgreSQL after this is given up
LAST_USED_MAX_PENDING = 1000  # writes in flight per process; beyond that a use goes unrecorded

log = logging.getLogger("linkedge.api.auth")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key, its team and what it may do."""

    key_id: UUID
    team_id: UUID
    team_name: str
    plan: Plan
    abilities: frozenset[str]


def generate_key() -> tuple[str, str, bytes]:
    """A new key: (full key shown once, prefix, stored hash of the secret)."""
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(32))
    return f"{KEY_SCHEME}{prefix}.{secret}", prefix, hash_secret(secret)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_key(header: str | None) -> tuple[str, str]:
    """(prefix, secret) from an Authorization header, or :class:`Unauthorized`."""
    if not header:
        raise Unauthorized("Missing API key: send 'Authorization: Bearer lk_<prefix>.<secret>'.")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("The Authorization header must be 'Bearer <api key>'.")
    body = token.removeprefix(KEY_SCHEME)
    prefix, dot, secret = body.partition(".")
    if not dot or not prefix or not secret or token == body:
        raise Unauthorized("Malformed API key: expected 'lk_<prefix>.<secret>'.")
    return prefix, secret


async def authenticate(pg: asyncpg.Pool, header: str | None) -> Principal:
    prefix, secret = parse_key(header)
    row = await pg.fetchrow(
        "SELECT k.id, k.team_id, k.secret_hash, k.abilities, k.revoked_at, t.name, t.plan "
        "FROM api_keys k JOIN teams t ON t.id = k.team_id WHERE k.prefix = $1",
        prefix,
    )
    if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), hash_secret(secret)):
        raise Unauthorized("Invalid API key.")
    if row["revoked_at"] is not None:
        raise Unauthorized("This API key has been revoked.")
    return Principal(
        key_id=row["id"],
        team_id=row["team_id"],
        team_name=row["name"],
        plan=get_plan(row["plan"]),
        abilities=frozenset(row["abilities"]),
    )


class UseGate:
    """The in-process fallback of the Redis gate: True at most once per ``every`` seconds per key."""

    def __init__(self, every: float = LAST_USED_EVERY_S, max_keys: int = 100_000) -> None:
        self.every = every
        self.max_keys = max_keys
        self.last: dict[UUID, float] = {}

    def open(self, key_id: UUID, now: float) -> bool:
        last = self.last.get(key_id)
        if last is not None and now - last < self.every:
            return False
        if len(self.last) >= self.max_keys:  # forget the keys whose minute is over
            self.last = {k: t for k, t in self.last.items() if now - t < self.every}
        self.last[key_id] = now
        return True


_use_gate = UseGate()
# Writes in flight: the event loop keeps only weak references to tasks, so they are held here.
_pending_writes: set[asyncio.Task[None]] = set()


async def _write_last_used(pg: asyncpg.Pool, key_id: UUID) -> None:
    try:
        await asyncio.wait_for(
            pg.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1", key_id), LAST_USED_TIMEOUT_S
        )
    except Exception as e:  # best effort: never surfaces, the next write is a minute away
        log.warning("could not record last_used_at of API key %s: %s", key_id, e or type(e).__name__)


async def record_use(redis: Redis, pg: asyncpg.Pool, settings: Settings, key_id: UUID) -> asyncio.Task[None] | None:
    """Schedule the key's ``last_used_at`` write when its minute's gate opens; returns the write's task."""
    try:
        opened = bool(
            await redis.set(key_used_gate_key(settings.key_prefix, str(key_id)), 1, nx=True, ex=LAST_USED_EVERY_S)
        )
    except RedisError:
        opened = _use_gate.open(key_id, time.monotonic())
    if not opened or len(_pending_writes) >= LAST_USED_MAX_PENDING:
        return None
    task = asyncio.create_task(_write_last_used(pg, key_id), name=f"last-used-{key_id}")
    _pending_writes.add(task)
    task.add_done_callback(_pending_writes.discard)
    return task


def _window(now: float) -> tuple[int, int]:
    window = int(now // 60)
    return window, (window + 1) * 60


def _over(message: str, limit: int, count: int, reset: int, now: float) -> RateLimited:
    retry = max(1, reset - int(now))
    rate = RateLimit(limit, max(0, limit - count), reset)
    return RateLimited(f"{message}; retry in {retry} s.", headers={"Retry-After": str(retry), **rate.headers()})


async def _count(redis: Redis, local: LocalLimiter, key: str, window: int, *, peek: bool = False) -> int:
    """This window's count for ``key`` after adding one (or, with ``peek``, as it stands)."""
    try:
        if peek:
            return int(await redis.get(key) or 0)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        return int(count)
    except RedisError:
        return local.counts.get(key, 0) if peek and local.window == window else local.incr(key, window)


async def check_rate(redis: Redis, settings: Settings, principal: Principal, local: LocalLimiter) -> RateLimit:
    """Count this request in the key's current minute; raise 429 past the plan's limit."""
    limit = principal.plan.rate_per_minute
    now = time.time()
    window, reset = _window(now)
    count = await _count(redis, local, api_rate_key(settings.key_prefix, str(principal.key_id), window), window)
    if count > limit:
        raise _over(f"Rate limit of {limit} requests per minute exceeded", limit, count, reset, now)
    return RateLimit(limit, max(0, limit - count), reset)


async def authenticate_request(request: ApiRequest) -> Principal:
    """:func:`authenticate`, throttled per client address: past :data:`AUTH_FAILURES_PER_MINUTE`
    wrong keys in a minute, every request from that address is a 429 until the minute ends.

    The address is the TCP peer: the API trusts no forwarding header. Behind a proxy, all callers
    share the proxy's budget, so a deployment there should limit per client at the proxy too.
    """
    state = request.state
    peer = request.client.host if request.client else "unknown"
    now = time.time()
    window, reset = _window(now)
    key = auth_failures_key(state["settings"].key_prefix, peer, window)
    limit = AUTH_FAILURES_PER_MINUTE
    failures = await _count(state["redis"], state["limiter"], key, window, peek=True)
    if failures >= limit:
        raise _over("Too many failed authentications from this address", limit, failures, reset, now)
    header = request.headers.get("authorization")
    try:
        principal = await authenticate(state["pg"], header)
    except Unauthorized:
        if header:  # a key was tried (no header at all guesses nothing)
            await _count(state["redis"], state["limiter"], key, window)
        raise
    await record_use(state["redis"], state["pg"], state["settings"], principal.key_id)
    return principal


def require(ability: str) -> Callable[[ApiRequest], Awaitable[Principal]]:
    """FastAPI dependency: authenticate, check ``ability``, count the request against the rate limit."""
    if ability not in ABILITIES:
        raise ValueError(f"unknown ability {ability!r}")

    async def dependency(request: ApiRequest) -> Principal:
        state = request.state
        principal = await authenticate_request(request)
        request.scope.setdefault("state", {})["rate_limit"] = await check_rate(
            state["redis"], state["settings"], principal, state["limiter"]
        )
        if ability not in principal.abilities:
            raise Forbidden(f"This API key lacks the '{ability}' ability.")
        return principal

    return dependency


def parse_abilities(value: str | list[str]) -> list[str]:
    """Abilities from a comma-separated string or list; ``all`` means every ability."""
    items = value.split(",") if isinstance(value, str) else value
    wanted = [a.strip() for a in items if a.strip()]
    if wanted == ["all"]:
        return list(ABILITIES)
    unknown = [a for a in wanted if a not in ABILITIES]
    if unknown or not wanted:
        raise ValueError(f"unknown abilities {', '.join(unknown) or '(none given)'}; expected {', '.join(ABILITIES)}")
    return list(dict.fromkeys(wanted))
