"""The worker's settings: one frozen object built from the environment and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from api.serving.config import DEFAULT_PUBLIC_BASE_URL, ServingConfig
from kit.postgres import DEFAULT_DATABASE_URL
from redirector.events import DEFAULT_SHARDS
from redirector.keys import KEY_PREFIX, arq_queue_name
from redirector.redis_url import DEFAULT_REDIS_URL


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    key_prefix: str = KEY_PREFIX
    event_shards: int = DEFAULT_SHARDS  # must match the edge's EVENT_SHARDS
    rollup_batch: int = 500  # stream entries read per shard step (each holds up to EVENT_BATCH events)
    rollup_idle_ms: int = 200  # pause of a shard loop that found nothing to do
    rollup_sum_processes: int = 2  # processes that sum stream entries while the worker commits (0: none)
    lease_ms: int = 10_000  # a dead worker's shards are taken over after this
    metrics_port: int = 9100  # Prometheus text on http://0.0.0.0:PORT/metrics; 0 disables
    heal_interval: float = 1.0  # seconds between checks that the serving cache is still there
    repair_interval: float = 5.0  # seconds between retries of failed cache writes
    pg_pool_size: int = 12
    # /healthz fails once a loop is this many seconds overdue; above every timeout of a round.
    stall_after: float = 120.0
    redis_timeout: float = 10.0  # seconds a Redis command (or connect) may take before it fails
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL  # the cache heal builds records with these
    bio_base_url: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        serving = ServingConfig.from_env(env)  # checks the base URLs
        return cls(
            database_url=env.get("DATABASE_URL", cls.database_url),
            redis_url=env.get("REDIS_URL", cls.redis_url),
            key_prefix=env.get("KEY_PREFIX", KEY_PREFIX),
            event_shards=int(env.get("EVENT_SHARDS", DEFAULT_SHARDS)),
            rollup_batch=int(env.get("ROLLUP_BATCH", cls.rollup_batch)),
            rollup_idle_ms=int(env.get("ROLLUP_IDLE_MS", cls.rollup_idle_ms)),
            rollup_sum_processes=int(env.get("ROLLUP_SUM_PROCESSES", cls.rollup_sum_processes)),
            lease_ms=int(env.get("ROLLUP_LEASE_MS", cls.lease_ms)),
            metrics_port=int(env.get("WORKER_METRICS_PORT", cls.metrics_port)),
            heal_interval=float(env.get("CACHE_HEAL_INTERVAL", cls.heal_interval)),
            repair_interval=float(env.get("CACHE_REPAIR_INTERVAL", cls.repair_interval)),
            pg_pool_size=int(env.get("WORKER_DB_POOL", cls.pg_pool_size)),
            stall_after=float(env.get("WORKER_STALL_AFTER", cls.stall_after)),
            redis_timeout=float(env.get("WORKER_REDIS_TIMEOUT", cls.redis_timeout)),
            public_base_url=serving.public_base_url,
            bio_base_url=serving.bio_base_url,
        )

    @property
    def queue_name(self) -> str:
        """arq queue, under the key prefix so separate deployments and test runs never share it.

        It carries arq's hash tag, like every arq key, so arq works on a Redis Cluster (kit.queue).
        """
        return arq_queue_name(self.key_prefix)

    @property
    def serving(self) -> ServingConfig:
        """The read model's view of this deployment, as the API builds it."""
        return ServingConfig(self.key_prefix, self.public_base_url, self.bio_base_url)
