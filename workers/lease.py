"""Leases in Redis: one owner at a time, lost by an owner that stops renewing it.

``SET key token NX PX ms`` takes a free lease; renewing and releasing check the token in
Lua, so an owner whose lease expired and was taken by another never extends or deletes
the new owner's lease. A lease only saves work: correctness never depends on it (the
roll-up's PostgreSQL watermark check catches an owner that lost its lease mid-batch).
"""

from __future__ import annotations

from redis.asyncio import Redis

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


async def acquire(redis: Redis, key: str, token: str, ms: int) -> bool:
    return bool(await redis.set(key, token, nx=True, px=ms))


async def renew(redis: Redis, key: str, token: str, ms: int) -> bool:
    return bool(await redis.eval(_RENEW, 1, key, token, str(ms)))  # type: ignore[misc]


async def release(redis: Redis, key: str, token: str) -> bool:
    return bool(await redis.eval(_RELEASE, 1, key, token))  # type: ignore[misc]
