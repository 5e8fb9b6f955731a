"""The edge's settings: one frozen object built from the environment and passed down."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from redirector.events import DEFAULT_SHARDS
from redirector.keys import KEY_PREFIX
from redirector.redis_url import DEFAULT_REDIS_URL

# Set by redirector.serve in each server process it starts (0, 1, ...); unset means 0.
PROCESS_INDEX_ENV = "LINKEDGE_PROCESS_INDEX"
DEFAULT_METRICS_PORT = 9101


def _networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in value.split(",") if v.strip())


def base_url(name: str, value: str) -> str:
    """``value`` as a base URL: http(s), a host, no path, query or fragment; else a ValueError
    naming the variable. A trailing slash is dropped; empty stays empty."""
    value = value.strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(
            f"{name} must be an http(s) URL with a host and nothing after it, like https://sho.rt: {value!r}"
        )
    return value


def bio_host(bio_base_url: str, public_base_url: str) -> str:
    """The netloc on which ``/{handle}`` is a bio page, or "" when pages live only at ``/@{handle}``.

    A bio host of its own serves ``/{handle}``. When ``BIO_BASE_URL`` is unset, or names the
    short-link host itself, ``/{handle}`` stays a short code (a handle and a code could be the
    same word), so pages are ``PUBLIC_BASE_URL/@{handle}``. The edge routes by this and the API
    builds every page URL by it, so a page's URL can never lead to someone's short link.
    """
    if not bio_base_url:
        return ""
    bio, public = urlsplit(bio_base_url), urlsplit(public_base_url)
    if not bio.hostname or bio.netloc.lower() == public.netloc.lower():
        return ""
    return bio.netloc.lower()


def platform_hosts(public_base_url: str, bio_base_url: str) -> frozenset[str]:
    """The hostnames of the service's own URLs: the edge serves them as its own domain, and no team
    may add one of them as a domain."""
    return frozenset(h for h in (urlsplit(public_base_url).hostname, urlsplit(bio_base_url).hostname) if h)


def bio_page_url(bio_base_url: str, public_base_url: str, handle: str) -> str:
    """The public URL of the bio page ``handle`` (see :func:`bio_host`)."""
    if bio_host(bio_base_url, public_base_url):
        return f"{bio_base_url}/{handle}"
    return f"{public_base_url}/@{handle}"


def _unknown_hosts(value: str) -> str:
    value = value.strip()
    if value in ("404", "platform"):
        return value
    scheme, sep, rest = value.partition("://")
    if sep and scheme.lower() in ("http", "https") and rest and not any(c.isspace() for c in value):
        return value
    raise ValueError(f"UNKNOWN_HOSTS must be 404, platform or an http(s) URL, got {value!r}")


def process_metrics_port(env: Mapping[str, str]) -> int:
    """This process's metrics port: ``EDGE_METRICS_PORT`` plus its index among the server processes."""
    base = int(env.get("EDGE_METRICS_PORT", DEFAULT_METRICS_PORT))
    return base + int(env.get(PROCESS_INDEX_ENV, "0")) if base > 0 else 0


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    redis_url: str = DEFAULT_REDIS_URL
    key_prefix: str = KEY_PREFIX
    public_base_url: str = "http://localhost:8080"
    bio_base_url: str = ""
    # Client IPs come from X-Forwarded-For only when the peer is one of these.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # A trusted edge header carrying the visitor's country (e.g. CF-IPCountry), checked before GeoIP.
    country_header: str = ""
    geoip_db: str = ""
    geoip_city_db: tuple[str, ...] = ()  # region and city (ip-location-db ships IPv4 and IPv6 apart)
    geoip_asn_db: tuple[str, ...] = ()  # autonomous system, hence the network class
    visitor_salt: str = "change-me"
    event_shards: int = DEFAULT_SHARDS
    event_flush_ms: float = 5.0
    event_batch: int = 500
    event_buffer_max: int = 100_000
    local_cache: bool = True
    local_cache_size: int = 100_000
    local_cache_ttl: float = 60.0
    negative_cache_ttl: float = 5.0
    # /metrics listens here, never on the public port (redirector.ops); 0 = off. From the
    # environment it is on by default (process_metrics_port()).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    # /healthz fails once a Redis client has been without a connection this long while Redis
    # answers a fresh one (redirector.liveness); 0 turns the check off.
    liveness_bound: float = 30.0
    # A Host that is neither the service's nor a verified team domain: "404" (the default), "platform"
    # (serve it as the service's own domain, as before domains existed), or an http(s) URL to redirect to.
    unknown_hosts: str = "404"
    # Read the visitor's Host from X-Forwarded-Host when the peer is one of TRUSTED_PROXIES.
    forwarded_host: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            redis_url=env.get("REDIS_URL", cls.redis_url),
            key_prefix=env.get("KEY_PREFIX", KEY_PREFIX),
            public_base_url=base_url("PUBLIC_BASE_URL", env.get("PUBLIC_BASE_URL", cls.public_base_url)),
            bio_base_url=base_url("BIO_BASE_URL", env.get("BIO_BASE_URL", "")),
            trusted_proxies=_networks(env.get("TRUSTED_PROXIES", "")),
            country_header=env.get("COUNTRY_HEADER", "").strip().lower(),
            geoip_db=env.get("GEOIP_DB", ""),
            geoip_city_db=_paths(env.get("GEOIP_CITY_DB", "")),
            geoip_asn_db=_paths(env.get("GEOIP_ASN_DB", "")),
            visitor_salt=env.get("VISITOR_SALT", cls.visitor_salt),
            event_shards=int(env.get("EVENT_SHARDS", DEFAULT_SHARDS)),
            event_flush_ms=float(env.get("EVENT_FLUSH_MS", cls.event_flush_ms)),
            event_batch=int(env.get("EVENT_BATCH", cls.event_batch)),
            event_buffer_max=int(env.get("EVENT_BUFFER_MAX", cls.event_buffer_max)),
            local_cache=_bool(env.get("LOCAL_CACHE", "1")),
            local_cache_size=int(env.get("LOCAL_CACHE_SIZE", cls.local_cache_size)),
            local_cache_ttl=float(env.get("LOCAL_CACHE_TTL", cls.local_cache_ttl)),
            metrics_host=env.get("EDGE_METRICS_HOST", cls.metrics_host),
            metrics_port=process_metrics_port(env),
            liveness_bound=float(env.get("EDGE_LIVENESS_BOUND", cls.liveness_bound)),
            unknown_hosts=_unknown_hosts(env.get("UNKNOWN_HOSTS", "404")),
            forwarded_host=_bool(env.get("FORWARDED_HOST", "0")),
        )


def _paths(value: str) -> tuple[str, ...]:
    """A comma-separated list of files."""
    return tuple(p.strip() for p in value.split(",") if p.strip())
