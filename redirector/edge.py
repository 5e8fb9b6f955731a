"""The edge's per-process runtime: Redis client, local caches, event buffer, GeoIP, metrics.

One :class:`Edge` is built in the app's lifespan and reaches handlers through the lifespan
state. Record lookups go local cache -> Redis GET -> decode, and invalidation messages drop
keys from the local caches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from redirector.cache import (
    DomainRecord,
    LinkRecord,
    PageRecord,
    RecordError,
    decode_domain,
    decode_page,
    decode_record,
)
from redirector.emitter import Emitter
from redirector.geo import GeoIP, create_client_ip, create_trust
from redirector.hosts import canonical_host, is_ip_literal
from redirector.keys import RESET, domain_key, link_key, page_key, ready_key
from redirector.local_cache import MISSING, LocalCache
from redirector.metrics import Metrics
from redirector.pubsub import Subscriber
from redirector.resp.client import REDIS_ERRORS, Store
from redirector.settings import Settings, bio_host, platform_hosts
from redirector.ua import UA_MAX, Agent, parse_agent
from redirector.visitor import VisitorHasher

log = logging.getLogger(__name__)

T = TypeVar("T")
READY_MEMO = 1.0  # seconds a "the cache is whole" answer is trusted before a miss asks again


class CacheNotReady(Exception):
    """Redis lost the cache (its ready sentinel, seen before, is gone) and the rebuild has not put it
    back yet: a miss proves nothing, so the request gets a 503 rather than a 404."""


PAGE_CACHE_MAX = 5_000  # pages carry their HTML; keep their share of memory bounded
DECODE_MEMO_MAX = 10_000
AGENT_MEMO_MAX = 8_192
HOST_MEMO_MAX = 4_096
DOMAIN_CACHE_MAX = 10_000
PLATFORM = ""  # Edge.hostname of the service's own hosts (and of unknown ones under UNKNOWN_HOSTS=platform)


class Edge:
    """Everything a request needs, built once per process."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics or Metrics()
        ttl, negative = settings.local_cache_ttl, settings.negative_cache_ttl
        self.links: LocalCache[LinkRecord] = LocalCache(
            settings.local_cache_size, ttl, negative, enabled=settings.local_cache
        )
        self.pages: LocalCache[PageRecord] = LocalCache(
            min(settings.local_cache_size, PAGE_CACHE_MAX), ttl, negative, enabled=settings.local_cache
        )
        self.domains: LocalCache[DomainRecord] = LocalCache(
            min(settings.local_cache_size, DOMAIN_CACHE_MAX), ttl, negative, enabled=settings.local_cache
        )
        self.domain_prefix = domain_key(settings.key_prefix, "")
        self.platform_hosts = platform_hosts(settings.public_base_url, settings.bio_base_url)
        # Host header bytes -> canonical hostname, PLATFORM for the service's own: one dict lookup a request.
        self.hosts: dict[bytes, str] = {}
        # Hostname -> (expiry, its domain record), for hosts found: the hot path's second dict lookup.
        # An entry goes with the domain's invalidation, on every reset, and after LOCAL_CACHE_TTL
        # like a local cache entry (the safety net for a missed invalidation).
        self.sites: dict[str, tuple[float, DomainRecord]] = {}
        self.forwarded_host = settings.forwarded_host
        # The ready sentinel is one key on one Redis; a cluster's are per master (the worker's), so
        # there a miss is believed as it is.
        self.ready_key = None if hasattr(store, "known_addresses") else ready_key(settings.key_prefix)
        self._ready_until = 0.0
        self._ready_seen = False  # a sentinel never seen (a cache not built yet) does not stop 404s
        self._ready_probe_after = 0.0
        self.emitter = Emitter(store, settings, self.metrics)
        self.geo = GeoIP(settings.geoip_db, settings.geoip_city_db, settings.geoip_asn_db)
        self.hasher = VisitorHasher(settings.visitor_salt)
        self.trusted_peer = create_trust(settings.trusted_proxies)
        self.client_ip = create_client_ip(settings.trusted_proxies)
        self.country_header = settings.country_header.encode("latin-1")
        self.link_prefix = link_key(settings.key_prefix, "")
        self.bio_hosts = bio_hosts(settings.bio_base_url, settings.public_base_url)
        self.subscriber: Subscriber | None = None  # set by the lifespan
        # Record bytes -> decoded record. Keyed by content, it can never serve a stale record: it
        # only saves the JSON parse and rule compilation when the local cache is off or missed.
        self._decoded: dict[bytes, LinkRecord] = {}
        self._agents: dict[bytes, Agent] = {}
        self._register_gauges()

    def agent(self, user_agent: bytes) -> Agent:
        """The classified User-Agent header, memoised on its raw bytes (no decode on a hit)."""
        agent = self._agents.get(user_agent)
        if agent is None:
            agent = parse_agent(user_agent.decode("latin-1"))
            if len(user_agent) > UA_MAX:
                return agent  # keys stay small: a hostile UA cannot fill memory through the memo
            agents = self._agents
            if len(agents) >= AGENT_MEMO_MAX:
                del agents[next(iter(agents))]  # oldest first; parse_agent has its own LRU behind
            agents[user_agent] = agent
        return agent

    async def link(self, code: str) -> LinkRecord | None:
        """The link record for ``code``, or ``None``; Redis failures raise (the caller answers 503)."""
        key = self.link_prefix + code
        hit = self.links.get(key)
        if hit is not None:
            return None if hit is MISSING else hit  # type: ignore[return-value]
        return await self._fetch(self.links, key, self._decode_link)

    def hostname(self, header: bytes) -> str:
        """The canonical hostname of a ``Host`` header, or :data:`PLATFORM` for the service's own hosts:
        its URLs' hosts, and names no team can own (IP literals, and names without a dot such as
        ``localhost`` or an internal service name). Memoised."""
        name = self.hosts.get(header)
        if name is None:
            name = canonical_host(header)
            if "." not in name or name in self.platform_hosts or is_ip_literal(name):
                name = PLATFORM
            hosts = self.hosts
            if len(hosts) >= HOST_MEMO_MAX:
                del hosts[next(iter(hosts))]  # oldest first: random Host headers cannot grow it
            hosts[header] = name
        return name

    async def may_serve(self, host: str) -> bool:
        """Whether ``host`` is one of the service's own hostnames or a verified team domain: what a
        TLS terminator may get a certificate for (IP literals and dotless names are not)."""
        name = canonical_host(host.encode("utf-8", "replace"))
        if name in self.platform_hosts:
            return True
        if "." not in name or is_ip_literal(name):
            return False
        return await self.domain(name) is not None

    async def domain(self, hostname: str) -> DomainRecord | None:
        """The verified team domain ``hostname``, or ``None``; Redis failures raise."""
        entry = self.sites.get(hostname)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        key = self.domain_prefix + hostname
        cache = self.domains
        generation = cache.generation
        hit = cache.get(key)
        site: DomainRecord | None
        if hit is None:
            site = await self._fetch(cache, key, decode_domain)
        else:
            site = hit if isinstance(hit, DomainRecord) else None
        if site is not None and cache.enabled and generation == cache.generation:
            sites = self.sites
            if len(sites) >= DOMAIN_CACHE_MAX:
                sites.clear()
            sites[hostname] = (time.monotonic() + cache.ttl, site)
        return site

    async def page(self, handle: str) -> PageRecord | None:
        """The page record for ``handle``, or ``None``; Redis failures raise."""
        key = page_key(self.settings.key_prefix, handle)
        hit = self.pages.get(key)
        if hit is not None:
            return None if hit is MISSING else hit  # type: ignore[return-value]
        return await self._fetch(self.pages, key, decode_page)

    async def _fetch(self, cache: LocalCache[T], key: str, decode: Callable[[bytes], T]) -> T | None:
        """A local cache miss: GET from Redis, decode, and cache the record (or its absence)."""
        generation = cache.generation
        try:
            data = await self.store.get(key)
        except REDIS_ERRORS:
            stale = cache.stale(key)
            if stale is None:
                raise
            # Cached before a resubscribe and not yet asked again: better stale than a 503.
            self.metrics.redis_errors += 1
            self.metrics.stale_served += 1
            return None if stale is MISSING else stale  # type: ignore[return-value]
        record: T | None = None
        if self.ready_key is not None:
            if data is None:
                if not await self._cache_ready():
                    raise CacheNotReady(key)
            elif not self._ready_seen:
                await self._learn_ready()
        if data is not None:
            try:
                record = decode(data)
            except RecordError as e:
                self.metrics.record_errors += 1
                log.error("undecodable record %s: %s", key, e)
        cache.put(key, MISSING if record is None else record, generation)
        return record

    async def _cache_ready(self) -> bool:
        """Whether a miss may be believed: the ready sentinel is there, or this process never saw it
        (nothing has built the cache yet, so nothing was lost). A yes is kept for a second."""
        now = time.monotonic()
        if now < self._ready_until:
            return True
        if await self.store.get(self.ready_key) is None:  # type: ignore[arg-type]
            return not self._ready_seen
        self._ready_seen = True
        self._ready_until = now + READY_MEMO
        return True

    async def _learn_ready(self) -> None:
        """Until this process has seen the ready sentinel, look for it (at most once a second) when
        a record is read: a cache that lost its sentinel can only be told from one never built so."""
        now = time.monotonic()
        if now < self._ready_probe_after:
            return
        self._ready_probe_after = now + READY_MEMO
        if await self.store.get(self.ready_key) is not None:  # type: ignore[arg-type]
            self._ready_seen = True
            self._ready_until = now + READY_MEMO

    def _decode_link(self, data: bytes) -> LinkRecord:
        """Decoding is pure, so the same bytes from Redis need not be parsed twice (cache off)."""
        decoded = self._decoded
        record = decoded.get(data)
        if record is None:
            record = decoded[data] = decode_record(data)
            if len(decoded) > DECODE_MEMO_MAX:
                del decoded[next(iter(decoded))]
        return record

    def invalidate(self, payload: bytes) -> None:
        """An invalidation message: the Redis key that changed, or :data:`~redirector.keys.RESET`."""
        self.metrics.invalidations += 1
        key = payload.decode("utf-8", "replace")
        if key == RESET:
            self.reset()
            return
        self.links.invalidate(key)
        self.pages.invalidate(key)
        self.domains.invalidate(key)
        if key.startswith(self.domain_prefix):
            self.sites.pop(key[len(self.domain_prefix) :], None)

    def reset(self) -> None:
        """Every cached record may be stale (the subscription (re)started, or a rebuild said so).

        Each is asked of Redis again before it is served; the old one is served, and counted,
        only while Redis cannot answer. The subscriber is often back before the data connection
        after an outage, and emptying the cache then turned working links into 503s.
        """
        self.links.demote()
        self.pages.demote()
        self.domains.demote()
        self.sites.clear()
        self._ready_until = 0.0  # Redis may have come back empty

    def is_bio_host(self, host: bytes) -> bool:
        if self.bio_hosts is None:
            return False
        netloc, any_port = self.bio_hosts
        host = host.lower()
        return host == netloc or (bool(any_port) and host.rpartition(b":")[0] == any_port)

    def _register_gauges(self) -> None:
        m = self.metrics
        m.gauges["linkedge_edge_events_buffered"] = ("Events waiting to be flushed.", lambda: self.emitter.pending)
        m.gauges["linkedge_edge_invalidation_subscribed"] = (
            "1 while the invalidation subscription is up.",
            lambda: float(self.subscriber is not None and self.subscriber.subscribed.is_set()),
        )
        m.gauges["linkedge_edge_local_cache_entries"] = ("Records in the local cache.", lambda: len(self.links))
        m.counters["linkedge_edge_local_cache_hits_total"] = ("Local cache hits.", lambda: self.links.hits)
        m.counters["linkedge_edge_local_cache_misses_total"] = ("Local cache misses.", lambda: self.links.misses)
        m.counters["linkedge_edge_page_cache_hits_total"] = ("Local page cache hits.", lambda: self.pages.hits)
        m.counters["linkedge_edge_page_cache_misses_total"] = ("Local page cache misses.", lambda: self.pages.misses)
        m.counters["linkedge_edge_stale_served_total"] = (
            "Records served from the cache of before a resubscribe because Redis could not be asked.",
            lambda: self.metrics.stale_served,
        )
        m.counters["linkedge_edge_redis_client_errors_total"] = (
            "Redis connection failures and timeouts.",
            lambda: float(getattr(self.store, "errors", 0)),
        )


def bio_hosts(bio_base_url: str, public_base_url: str) -> tuple[bytes, bytes] | None:
    """``(netloc, hostname-on-any-port)`` on which ``/{handle}`` is a bio page rather than a short code.

    Which host that is comes from :func:`redirector.settings.bio_host`, the rule the API builds
    page URLs by. Without an explicit port the bio host matches on any port, unless the short-link
    host has the same name (then only the exact netloc does).
    """
    netloc = bio_host(bio_base_url, public_base_url)
    if not netloc:
        return None
    bio, public = urlsplit(bio_base_url), urlsplit(public_base_url)
    any_port = bio.hostname if bio.port is None and bio.hostname != public.hostname else ""
    return netloc.encode("idna"), (any_port or "").encode("idna")
