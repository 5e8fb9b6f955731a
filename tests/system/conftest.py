"""The worker fault tests drive a Rollup in-process as well as worker processes: they share the
worker tests' fixtures (settings, and a PostgreSQL pool and Redis client on a clean slate)."""

from tests.workers.conftest import pg, redis, settings

__all__ = ["pg", "redis", "settings"]
