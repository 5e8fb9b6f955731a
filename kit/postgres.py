"""PostgreSQL pool creation shared by the API, the CLI and the workers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import orjson

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/linkedge"  # every process's default

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
# A row as queries return it (or a plain mapping with the same keys, as tests and imports build).
Row = asyncpg.Record | Mapping[str, Any]


async def _init(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, everywhere.
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
        )


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size, init=_init, **kwargs)
    assert pool is not None
    return pool
