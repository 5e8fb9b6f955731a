"""The management API's settings: one frozen object built from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from api.domains.dns import parse_resolver
from api.serving.config import DEFAULT_PUBLIC_BASE_URL, ServingConfig
from kit.postgres import DEFAULT_DATABASE_URL
from redirector.events import DEFAULT_SHARDS
from redirector.keys import KEY_PREFIX, arq_queue_name
from redirector.redis_url import DEFAULT_REDIS_URL
from redirector.settings import platform_hosts


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    key_prefix: str = KEY_PREFIX
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL
    bio_base_url: str = ""
    max_body_bytes: int = 1024 * 1024
    pool_min: int = 1
    pool_max: int = 10
    event_shards: int = DEFAULT_SHARDS  # EVENT_SHARDS, as the edge and the worker have it (stats freshness)
    dns_resolver: str = ""  # DNS_RESOLVER: host[:port] for domain checks; empty: the system's resolver

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        serving = ServingConfig.from_env(env)  # checks the base URLs
        return cls(
            database_url=env.get("DATABASE_URL", cls.database_url),
            redis_url=env.get("REDIS_URL", cls.redis_url),
            key_prefix=env.get("KEY_PREFIX", KEY_PREFIX),
            public_base_url=serving.public_base_url,
            bio_base_url=serving.bio_base_url,
            max_body_bytes=int(env.get("MAX_BODY_BYTES", cls.max_body_bytes)),
            pool_min=int(env.get("DB_POOL_MIN", cls.pool_min)),
            pool_max=int(env.get("DB_POOL_MAX", cls.pool_max)),
            event_shards=int(env.get("EVENT_SHARDS", DEFAULT_SHARDS)),
            dns_resolver=_resolver(env.get("DNS_RESOLVER", "")),
        )

    @property
    def platform_hosts(self) -> frozenset[str]:
        """The service's own hostnames, which no team may add as a domain."""
        return platform_hosts(self.public_base_url, self.bio_base_url)

    @property
    def queue_name(self) -> str:
        """arq queue, under the key prefix so separate deployments and test runs never share it.

        It carries arq's hash tag, like every arq key, so arq works on a Redis Cluster (redirector.keys).
        """
        return arq_queue_name(self.key_prefix)

    @property
    def serving(self) -> ServingConfig:
        """The read model's view of this deployment (what the edge's records are built with)."""
        return ServingConfig(self.key_prefix, self.public_base_url, self.bio_base_url)

    def bio_url(self, handle: str) -> str:
        """Public URL of a bio page: the bio host when configured, else /@handle on the edge."""
        return self.serving.bio_url(handle)


def _resolver(spec: str) -> str:
    if spec.strip():
        parse_resolver(spec)  # refuse a bad DNS_RESOLVER at start-up, naming it
    return spec.strip()
