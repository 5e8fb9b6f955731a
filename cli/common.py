"""What every ``linkedge`` command shares: its error type, connections to the services it was
given, and the progress bar.

The URLs come from the settings exactly as given (``DATABASE_URL`` / ``REDIS_URL``, else the
defaults on 127.0.0.1); nothing here looks for another server. A service that does not answer is
a :class:`CliError` naming its URL with the password redacted.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.settings import Settings
from kit.postgres import create_pool
from kit.redis import connect_redis
from redirector.redis_url import redact

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]
T = TypeVar("T")
HINT = "set DATABASE_URL / REDIS_URL (`linkedge services start` prints them for the embedded servers)"


class CliError(Exception):
    """A failure reported as one line on stderr, exit status 1."""


def unreachable(what: str, url: str, error: BaseException) -> CliError:
    return CliError(f"{what} is not answering at {redact(url)} ({error or type(error).__name__}); {HINT}")


_CONNECT_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError, TimeoutError)


async def _postgres(settings: Settings, opened: Awaitable[T]) -> T:
    """``opened`` (a connection or a pool), or the one-line error naming the database URL."""
    try:
        return await opened
    except _CONNECT_ERRORS as e:
        raise unreachable("PostgreSQL", settings.database_url, e) from e


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """One PostgreSQL connection for a command, closed however it ends."""
    conn = await _postgres(settings, asyncpg.connect(settings.database_url, timeout=10))
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def pool_only(settings: Settings, *, pool_size: int = 2) -> AsyncIterator[asyncpg.Pool]:
    """A small PostgreSQL pool for a command, closed however it ends."""
    pool = await _postgres(settings, create_pool(settings.database_url, min_size=1, max_size=pool_size, timeout=10))
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def pool_and_redis(settings: Settings, *, pool_size: int = 2) -> AsyncIterator[tuple[asyncpg.Pool, Redis]]:
    """:func:`pool_only` and a Redis client (checked with PING), both closed at the end."""
    async with pool_only(settings, pool_size=pool_size) as pool:
        redis = connect_redis(settings.redis_url, socket_connect_timeout=5)
        try:
            try:
                await redis.ping()
            except (RedisError, OSError) as e:
                raise unreachable("Redis", settings.redis_url, e) from e
            yield pool, redis
        finally:
            await redis.aclose()


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr, driven by ``progress(done, total)`` calls."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def add_command(sub: Any, name: str, func: Command | None, text: str, handler: Any = None) -> argparse.ArgumentParser:
    """A subcommand running ``func(args, settings)`` (or ``handler(args, env)`` for process launchers)."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    p.set_defaults(command=func, handler=handler)
    return p
