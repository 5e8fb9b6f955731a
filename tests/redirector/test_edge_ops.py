"""Operational behaviour: health, metrics, event batching and shutdown, Redis outages, invalidation."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
import redis
import redis.asyncio
from starlette.testclient import TestClient

from redirector.app import create_app
from redirector.events import CLICK
from redirector.keys import event_stream_key, link_key
from tests.redirector.edge_support import (
    BROWSER,
    edge_client,
    edge_metrics,
    free_port,
    metrics_url,
    private_redis,
    put_link,
    read_events,
    redis_client,
    settings_for,
    wait_until,
)


def test_healthz_and_readyz(env):
    with edge_client(settings_for(env)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_readyz_503_and_links_503_without_redis(env):
    down = f"redis://127.0.0.1:{free_port()}/0"
    with edge_client(settings_for(env, redis_url=down)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"status": "unavailable"}  # no error detail
        miss = client.get("/anything", headers={"accept": "application/json"})
        assert miss.status_code == 503 and miss.headers["retry-after"] == "1"
        assert miss.json()["error"]["code"] == "unavailable"


def test_metrics(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "m")
    with edge_client(settings_for(env, metrics_port=free_port())) as client:
        client.get("/m", headers=BROWSER)
        client.get("/m", headers=BROWSER)
        client.get("/nope")
        assert wait_until(lambda: edge_metrics(client)["linkedge_edge_events_flushed_total"] == 2)
        samples = edge_metrics(client)
    assert samples['linkedge_edge_requests_total{status="302"}'] == 2
    assert samples['linkedge_edge_requests_total{status="404"}'] == 1
    assert samples["linkedge_edge_redirects_total"] == 2
    assert samples["linkedge_edge_local_cache_hits_total"] >= 1
    assert samples["linkedge_edge_local_cache_misses_total"] >= 2
    assert samples["linkedge_edge_event_batches_total"] >= 1
    assert samples["linkedge_edge_invalidation_subscribed"] == 1
    for name in ("events_buffered", "events_dropped_total", "redis_errors_total", "redis_client_errors_total"):
        assert samples[f"linkedge_edge_{name}"] == 0


def test_events_wait_for_the_flush_and_are_flushed_on_shutdown(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "s")
    with edge_client(settings_for(env, event_flush_ms=600_000.0)) as client:
        for _ in range(3):
            assert client.get("/s", headers=BROWSER).status_code == 302
        assert read_events(r, key_prefix) == []  # one XADD per flush, not per click
    events = read_events(r, key_prefix)
    assert [e.kind for e in events] == [CLICK] * 3
    entries = sum(r.xlen(event_stream_key(key_prefix, shard)) for shard in range(8))
    assert entries == 1  # the three events went out as one batch


def test_full_batch_flushes_early_round_robin(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "s")
    with edge_client(settings_for(env, event_flush_ms=600_000.0, event_batch=2)) as client:
        for _ in range(6):
            client.get("/s", headers=BROWSER)
        assert wait_until(lambda: len(read_events(r, key_prefix)) == 6)
    lengths = [r.xlen(event_stream_key(key_prefix, shard)) for shard in range(8)]
    assert sum(lengths) == 3 and max(lengths) == 1  # three batches on three consecutive shards


def test_redis_outage_cached_links_keep_working(env):
    port = free_port()
    with private_redis(port=port) as (url, server):
        own = redis.Redis.from_url(url)
        put_link(own, "o:", "cached", "https://example.com/cached")
        settings = settings_for(
            env, redis_url=url, key_prefix="o:", event_buffer_max=3, event_flush_ms=1.0, metrics_port=free_port()
        )
        with edge_client(settings) as client:
            assert client.get("/cached", headers=BROWSER).status_code == 302
            assert wait_until(lambda: len(read_events(own, "o:")) == 1)
            server.terminate()
            server.wait(10)
            for _ in range(5):
                response = client.get("/cached", headers=BROWSER)
                assert response.status_code == 302 and response.headers["location"] == "https://example.com/cached"
            assert client.get("/unknown").status_code == 503
            samples = edge_metrics(client)
            assert samples["linkedge_edge_events_dropped_total"] == 2  # five clicks, room for three
            assert samples["linkedge_edge_events_buffered"] == 3
            assert samples["linkedge_edge_redis_errors_total"] >= 1
            assert client.get("/readyz").status_code == 503
            with private_redis(port=port) as (_, _server):
                restarted = redis.Redis.from_url(url)
                # The client reconnects by itself and the buffered events go out.
                assert wait_until(lambda: len(read_events(restarted, "o:")) == 3, timeout=10)
                assert client.get("/readyz").status_code == 200


def test_metrics_have_a_listener_of_their_own(env, key_prefix):
    """Issue 9 item 7: the public port has no /metrics (an unknown code there); the listener has."""
    with edge_client(settings_for(env, metrics_port=free_port())) as client:
        public = client.get("/metrics", headers={"accept": "application/json"})
        assert public.status_code == 404 and public.json()["error"]["code"] == "not_found"
        assert client.head("/metrics").status_code == 404
        with urllib.request.urlopen(metrics_url(client), timeout=5) as response:
            assert response.status == 200
            assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            assert b'linkedge_edge_requests_total{pid="' in response.read()
        head = urllib.request.Request(metrics_url(client), method="HEAD")
        with urllib.request.urlopen(head, timeout=5) as response:
            assert response.status == 200 and response.read() == b""
        for path, method, status in (("/", "GET", 404), ("/healthz", "GET", 404), ("/metrics", "POST", 405)):
            request = urllib.request.Request(metrics_url(client, path), method=method)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            refused.value.close()
            assert refused.value.code == status, (path, method)
        edge_metrics(client)  # a scrape does not count as a request of the public port
        samples = edge_metrics(client)
    assert samples['linkedge_edge_requests_total{status="404"}'] == 2
    assert 'linkedge_edge_requests_total{status="200"}' not in samples


def test_invalidation_drops_cached_records(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "inv", "https://example.com/old")
    with edge_client(settings_for(env)) as client:
        assert client.get("/inv").headers["location"] == "https://example.com/old"
        assert client.get("/later").status_code == 404  # cached as missing
        r.set(link_key(key_prefix, "inv"), r.get(link_key(key_prefix, "inv")).replace(b"/old", b"/new"))
        # without an announcement the cached record stands (the TTL is the only other way out)
        assert client.get("/inv").headers["location"] == "https://example.com/old"
        r.publish(f"{key_prefix}invalidate", link_key(key_prefix, "inv"))
        assert wait_until(lambda: client.get("/inv").headers["location"] == "https://example.com/new")
        put_link(r, key_prefix, "later", "https://example.com/later")
        assert wait_until(lambda: client.get("/later").status_code == 302)


def test_resubscribe_revalidates_the_local_cache(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "re", "https://example.com/before")
    with edge_client(settings_for(env)) as client:
        assert client.get("/re").headers["location"] == "https://example.com/before"
        edge = client.app_state["edge"]
        subscriber = edge.subscriber
        assert subscriber.resets == 1
        # Changed silently (as if the message were lost while the subscription was down) ...
        r.set(link_key(key_prefix, "re"), r.get(link_key(key_prefix, "re")).replace(b"/before", b"/after"))
        assert client.get("/re").headers["location"] == "https://example.com/before"
        # ... then the subscriber's connection dies: on resubscribing the edge asks Redis again.
        port = subscriber._protocol._transport.get_extra_info("sockname")[1]
        [conn] = [c for c in r.client_list() if c["addr"].endswith(f":{port}") and c["addr"].startswith("127.")]
        r.client_kill_filter(_id=conn["id"])
        assert wait_until(lambda: subscriber.resets == 2)
        assert client.get("/re").headers["location"] == "https://example.com/after"


class RedisPyStore:
    """redis-py's asyncio client behind the edge's Store interface (what a benchmark would swap in)."""

    def __init__(self, url: str) -> None:
        self.client = redis.asyncio.Redis.from_url(url)

    async def get(self, key: str) -> bytes | None:
        return await self.client.get(key)

    async def execute(self, *args):
        return await self.client.execute_command(*args)

    async def aclose(self) -> None:
        await self.client.aclose()


def test_the_redis_client_is_swappable(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "swap", "https://example.com/swapped")

    async def factory(settings):
        return RedisPyStore(settings.redis_url)

    with TestClient(create_app(settings_for(env), store_factory=factory), follow_redirects=False) as client:
        assert client.get("/swap", headers=BROWSER).headers["location"] == "https://example.com/swapped"
        assert client.get("/readyz").status_code == 200
    assert len(read_events(r, key_prefix)) == 1
