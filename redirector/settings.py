"""The edge's settings: one frozen object built from the environment and passed down."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from redirector.events import DEFAULT_SHARDS
from redirector.keys import KEY_PREFIX
from redirector.redis_url import DEFAULT_REDIS_URL


def _networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in value.split(",") if v.strip())


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
    visitor_salt: str = "change-me"
    event_shards: int = DEFAULT_SHARDS
    event_flush_ms: float = 5.0
    event_batch: int = 500
    event_buffer_max: int = 100_000
    local_cache: bool = True
    local_cache_size: int = 100_000
    local_cache_ttl: float = 60.0
    negative_cache_ttl: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            redis_url=env.get("REDIS_URL", cls.redis_url),
            key_prefix=env.get("KEY_PREFIX", KEY_PREFIX),
            public_base_url=env.get("PUBLIC_BASE_URL", cls.public_base_url).rstrip("/"),
            bio_base_url=env.get("BIO_BASE_URL", "").rstrip("/"),
            trusted_proxies=_networks(env.get("TRUSTED_PROXIES", "")),
            country_header=env.get("COUNTRY_HEADER", "").strip().lower(),
            geoip_db=env.get("GEOIP_DB", ""),
            visitor_salt=env.get("VISITOR_SALT", cls.visitor_salt),
            event_shards=int(env.get("EVENT_SHARDS", DEFAULT_SHARDS)),
            event_flush_ms=float(env.get("EVENT_FLUSH_MS", cls.event_flush_ms)),
            event_batch=int(env.get("EVENT_BATCH", cls.event_batch)),
            event_buffer_max=int(env.get("EVENT_BUFFER_MAX", cls.event_buffer_max)),
            local_cache=_bool(env.get("LOCAL_CACHE", "1")),
            local_cache_size=int(env.get("LOCAL_CACHE_SIZE", cls.local_cache_size)),
            local_cache_ttl=float(env.get("LOCAL_CACHE_TTL", cls.local_cache_ttl)),
        )
