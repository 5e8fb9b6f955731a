"""The edge's own Redis clients: an auto-pipelining RESP client, and a slot-routing one for a cluster.

:func:`create_store` picks the one a URL names, so callers never special-case the cluster.
"""

from __future__ import annotations

from redirector.redis_url import is_cluster_url
from redirector.resp.client import REDIS_ERRORS, RespClient, RespConnectionError, RespError, RespTimeoutError, Store
from redirector.resp.cluster import ClusterRespClient

__all__ = [
    "REDIS_ERRORS",
    "ClusterRespClient",
    "RespClient",
    "RespConnectionError",
    "RespError",
    "RespTimeoutError",
    "Store",
    "create_store",
]


async def create_store(url: str) -> Store:
    """A started client for ``url``: one connection, or one per master for ``redis+cluster://``."""
    client: RespClient | ClusterRespClient = ClusterRespClient(url) if is_cluster_url(url) else RespClient(url)
    await client.start()
    return client
