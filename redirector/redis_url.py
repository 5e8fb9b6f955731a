"""Redis URLs, parsed the same way by every process: ``redis://``, ``rediss://``, ``unix://`` and
``redis+cluster://`` / ``rediss+cluster://`` (a Redis Cluster named by its seed nodes). Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"  # every process's default
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS


@dataclass(frozen=True)
class RedisAddress:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # unix socket
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS) or ``unix:///path?db=N``."""
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            hint = " (a Redis Cluster URL goes to cluster_seeds)" if parts.scheme.endswith("+cluster") else ""
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}{hint}")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        params = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        if parts.scheme == "unix":
            return cls(path=parts.path, username=username, password=password, db=int(params.get("db", 0)))
        db = parts.path.strip("/") or params.get("db", "0")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            username=username,
            password=password,
            db=int(db),
            tls=parts.scheme == "rediss",
        )


def is_cluster_url(url: str) -> bool:
    """True for ``redis+cluster://`` and ``rediss+cluster://`` URLs."""
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def cluster_seeds(url: str) -> list[RedisAddress]:
    """The seed nodes of ``redis+cluster://[user:password@]host:port[,host:port...][/0]``.

    Credentials apply to every node. A cluster has only database 0, so any other is an error.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in CLUSTER_SCHEMES:
        raise ValueError(f"not a Redis Cluster URL (redis+cluster://host:port[,host:port...]): {url!r}")
    netloc, _, path = rest.partition("/")
    path = path.split("?", 1)[0].strip("/")
    if path not in ("", "0"):
        raise ValueError(f"Redis Cluster has only database 0, not {path!r}: {url!r}")
    userinfo, _, hosts = netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    seeds: list[RedisAddress] = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            parts = urlsplit(f"//{item}")
            host, port = parts.hostname, parts.port or 6379
        except ValueError as e:
            raise ValueError(f"bad seed node {item!r} in Redis Cluster URL: {e}") from e
        if not host:
            raise ValueError(f"bad seed node {item!r} in Redis Cluster URL")
        seeds.append(
            RedisAddress(
                host=host,
                port=port,
                username=unquote(username) if username else None,
                password=unquote(password) if userinfo and (password or ":" in userinfo) else None,
                tls=CLUSTER_SCHEMES[scheme.lower()],
            )
        )
    if not seeds:
        raise ValueError(f"Redis Cluster URL names no seed node: {url!r}")
    return seeds


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``; also for cluster seed lists."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hosts}{slash}{tail}"
