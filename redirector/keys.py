"""Every Redis key, channel and hash tag linkedge uses, in one place (like ``arq/constants.py``).

Each name starts with the deployment's ``KEY_PREFIX`` (default ``le:``), so deployments and test
runs sharing a Redis never see each other's data. Keys that must share a Redis Cluster slot carry
the same ``{hash tag}``: an event stream and its shard lease share ``{N}``; every arq key carries
:data:`ARQ_TAG`. ``KEY_PREFIX`` must therefore not contain ``{`` or ``}``.

Stdlib only: the edge, the API, the workers and the CLI all import it.
"""

from __future__ import annotations

KEY_PREFIX = "le:"

# arq's one fixed multi-key partner is ``arq:abort`` (``arq.constants.abort_jobs_ss``): a key
# tagged with that name in braces lands in its slot, so arq's MULTI/EXEC stays in one slot.
ARQ_ABORT_KEY = "arq:abort"
ARQ_TAG = "{" + ARQ_ABORT_KEY + "}"


# --- the serving cache: written by the API (and the worker's rebuild), read by the edge ---------


def link_key(prefix: str, code: str, domain_id: str | None = None) -> str:
    """Cache record of a short link: ``l:{code}`` on the platform's domain, ``l:{domain id}/{code}``
    on a team's own. Codes are case-sensitive, so the key is too; a code never holds ``/``."""
    return f"{prefix}l:{code}" if domain_id is None else f"{prefix}l:{domain_id}/{code}"


def domain_key(prefix: str, hostname: str) -> str:
    """Cache record of a verified domain, by its canonical hostname (:mod:`redirector.hosts`)."""
    return f"{prefix}d:{hostname}"


def page_key(prefix: str, handle: str) -> str:
    """Cache record of a bio page. Handles are case-insensitive."""
    return f"{prefix}p:{handle.lower()}"


def clicks_key(prefix: str, link_id: str) -> str:
    """Counter the edge increments for links with ``max_clicks``."""
    return f"{prefix}mc:{link_id}"


def invalidation_channel(prefix: str) -> str:
    """Pub/sub channel on which every write announces the cache keys it changed (or :data:`RESET`)."""
    return f"{prefix}invalidate"


# The message on the invalidation channel that means "forget everything": sent after a cache
# rebuild, which writes records without announcing each one (an edge would otherwise keep
# answering from what it remembered as missing).
RESET = "*"


def ready_key(prefix: str) -> str:
    """Sentinel written after a full cache build; its absence means Redis lost the cache."""
    return f"{prefix}cache:ready"


def ready_marker_key(prefix: str, n: int) -> str:
    """One of a Redis Cluster's per-master ready sentinels: :func:`ready_key` with hash tag ``{rN}``."""
    return f"{ready_key(prefix)}:{{r{n}}}"


def rebuild_lock_key(prefix: str) -> str:
    """Lock held by the one worker rebuilding the cache."""
    return f"{prefix}cache:rebuild:lock"


# --- the click pipeline: the edge appends, the workers roll up ----------------------------------


def event_stream_key(prefix: str, shard: int) -> str:
    """Stream of shard ``shard``; the braces make it its own Redis Cluster hash slot."""
    return f"{prefix}ev:{{{shard}}}"


def shard_lease_key(prefix: str, shard: int) -> str:
    """Lease of the worker rolling up shard ``shard``: in the same slot as its stream."""
    return f"{prefix}rollup:lease:{{{shard}}}"


def workers_key(prefix: str) -> str:
    """Sorted set of live roll-up workers (heartbeats), used to split the shards between them."""
    return f"{prefix}rollup:workers"


# --- rate limits ----------------------------------------------------------------------------------


def api_rate_key(prefix: str, key_id: str, window: int) -> str:
    """Requests of one API key in one minute window."""
    return f"{prefix}rl:{key_id}:{window}"


def auth_failures_key(prefix: str, address: str, window: int) -> str:
    """Failed API authentications from one client address in one minute window."""
    return f"{prefix}rl:auth:{address}:{window}"


def password_limit_key(prefix: str, link_id: str, address: str) -> str:
    """Password attempts on one link from one client address (``*``: from all of them)."""
    return f"{prefix}rl:pw:{link_id}:{address}"


def form_limit_key(prefix: str, block_id: str, address: str) -> str:
    """Submissions of one form block from one client address (``*``: from all of them)."""
    return f"{prefix}rl:form:{block_id}:{address}"


# --- arq ------------------------------------------------------------------------------------------


def arq_queue_name(prefix: str) -> str:
    """The arq queue: under the key prefix, in the arq slot."""
    return f"{prefix}arq:queue{ARQ_TAG}"


def purge_cron_name(prefix: str) -> str:
    """The purge cron's name; arq builds each firing's job id from it, so it carries the prefix and tag."""
    return f"{prefix}cron:purge_deleted_pages{ARQ_TAG}"


def retention_cron_name(prefix: str) -> str:
    """The analytics retention cron's name: like :func:`purge_cron_name`, with the prefix and arq's tag."""
    return f"{prefix}cron:prune_expired_stats{ARQ_TAG}"


# --- API keys -------------------------------------------------------------------------------------


def key_used_gate_key(prefix: str, key_id: str) -> str:
    """Set (NX, 60 s) when the API records a key's ``last_used_at``: at most one write a minute per key."""
    return f"{prefix}ak:used:{key_id}"
