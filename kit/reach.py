"""Is anything listening at a service URL? A TCP probe used before handing a URL to a client."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from redirector.redis_url import cluster_seeds, is_cluster_url


def answers(url: str, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at the URL's host and port.

    A URL without a host (a Unix socket) is taken as given: the client will say if it is wrong.
    A Redis Cluster URL (``redis+cluster://h1:p1,h2:p2``) answers when any of its seed nodes does.
    """
    if is_cluster_url(url):
        return any(_tcp(seed.host, seed.port, timeout) for seed in cluster_seeds(url))
    parts = urlsplit(url)
    if not parts.hostname:
        return True
    default_port = 5432 if parts.scheme.startswith("postgres") else 6379
    return _tcp(parts.hostname, parts.port or default_port, timeout)


def _tcp(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout):
            return True
    except OSError:
        return False
