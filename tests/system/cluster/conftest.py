"""Fixtures for the Redis Cluster tests: one real three-master cluster per session.

Skipped, with the reason, only when ``redis-server`` or ``redis-cli`` is missing; a cluster that
fails to start is an error. PostgreSQL comes from the usual fixtures (``env``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system.cluster.support import LocalCluster, missing_binaries


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    reason = missing_binaries()
    if reason:
        pytest.skip(reason)
    with LocalCluster(masters=3) as running:
        yield running


@pytest.fixture
def cluster_env(env: dict[str, str], cluster: LocalCluster) -> dict[str, str]:
    """The usual test environment on a clean slate, with ``REDIS_URL`` naming the (flushed) cluster."""
    cluster.flushall()
    return {**env, "REDIS_URL": cluster.url}
