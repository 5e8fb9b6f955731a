"""Redis going away and coming back: what the edge serves meanwhile, and how it recovers.

Each test runs a redis-server of its own, so it can be stopped and started again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from redirector import pubsub
from redirector.app import create_app
from redirector.keys import link_key
from redirector.liveness import GRACE
from redirector.resp import Store, create_store
from redirector.settings import Settings
from tests.redirector.edge_support import (
    BROWSER,
    TcpGate,
    delete_key,
    edge_client,
    edge_metrics,
    free_port,
    private_redis,
    put_link,
    settings_for,
    wait_until,
)

PREFIX = "rec:"
Answer = tuple[int, str]


def answer(client: TestClient, path: str) -> Answer:
    response = client.get(path, headers=BROWSER)
    return response.status_code, response.headers.get("location", "")


def hammer(client: TestClient, path: str, until: Callable[[Answer], bool], timeout: float = 10.0) -> list[Answer]:
    """GET ``path`` back to back until an answer satisfies ``until`` (or ``timeout``); every answer."""
    seen: list[Answer] = []

    def done() -> bool:
        seen.append(answer(client, path))
        return until(seen[-1])

    wait_until(done, timeout)
    return seen


@contextmanager
def edge_with_store_via(gate: TcpGate, settings: Settings) -> Iterator[TestClient]:
    """An edge whose data connection goes through ``gate``; its subscriber connects to Redis directly."""

    async def through_gate(settings: Settings) -> Store:
        return await create_store(f"redis://127.0.0.1:{gate.port}/0")

    app = create_app(settings, store_factory=through_gate)
    with TestClient(app, follow_redirects=False) as client:
        yield client


def test_no_503_when_the_subscriber_is_back_before_the_data_connection(env, tmp_path: Path):
    """Issue 10 item 3: links served from the local cache through an outage keep redirecting while
    Redis comes back, whichever of the edge's two connections returns first.

    The data connection goes through a gate that opens only after the subscriber has resubscribed
    (the order that used to empty the cache while nothing could refill it). A record changed
    while the edge was not listening is served again as soon as Redis can be asked; one whose
    invalidation arrives meanwhile is never served from the old cache.
    """
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    with private_redis(port=port, data_dir=data) as (url, server):
        own = redis.Redis.from_url(url)
        put_link(own, PREFIX, "hot", "https://example.com/v1")
        put_link(own, PREFIX, "gone", "https://example.com/gone")
        own.save()  # the restarted server loads this
        with (
            TcpGate(port) as gate,
            edge_with_store_via(
                gate, settings_for(env, redis_url=url, key_prefix=PREFIX, metrics_port=free_port())
            ) as client,
        ):
            subscriber = client.app_state["edge"].subscriber
            assert answer(client, "/hot") == (302, "https://example.com/v1")
            assert answer(client, "/gone") == (302, "https://example.com/gone")

            gate.shut()
            server.terminate()
            server.wait(10)
            for _ in range(20):
                assert answer(client, "/hot") == (302, "https://example.com/v1")  # the local cache

            with private_redis(port=port, data_dir=data) as (_, _restarted):
                assert wait_until(lambda: subscriber.resets >= 2, timeout=10), "the subscriber did not come back"
                back = redis.Redis.from_url(url)
                assert back.get(link_key(PREFIX, "hot")) is not None, "the restarted Redis lost the data"
                # Written without an announcement: a change this edge missed while it was not subscribed.
                key = link_key(PREFIX, "hot")
                back.set(key, back.get(key).replace(b"/v1", b"/v2"))
                # And one it hears about now: the old record must not be served any more.
                invalidations = edge_metrics(client)["linkedge_edge_invalidations_total"]
                delete_key(back, PREFIX, link_key(PREFIX, "gone"))
                assert wait_until(lambda: edge_metrics(client)["linkedge_edge_invalidations_total"] > invalidations)

                # The data connection is still down: the cached record is served, stale but not a 503.
                during = [answer(client, "/hot") for _ in range(50)]
                assert set(during) == {(302, "https://example.com/v1")}
                assert answer(client, "/gone")[0] == 503  # invalidated: nothing left to serve it from

                gate.open()
                after = hammer(client, "/hot", until=lambda a: a == (302, "https://example.com/v2"))
                assert after[-1] == (302, "https://example.com/v2"), "the missed change was never picked up"
                assert {status for status, _ in after} == {302}, after
                assert answer(client, "/gone")[0] == 404
                samples = edge_metrics(client)
                assert samples["linkedge_edge_stale_served_total"] >= len(during)


def kill_connections(r: redis.Redis, name: str) -> int:
    """Close the edge's connections called ``name`` from the server side; how many there were."""
    ids = [c["id"] for c in r.client_list() if c["name"] == name]
    for client_id in ids:
        r.client_kill_filter(_id=client_id)
    return len(ids)


async def never_connects(*args: object, **kwargs: object) -> object:
    await asyncio.Event().wait()  # a reconnect that hangs for good
    raise AssertionError("unreachable")


def stall_the_store(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> str:
    store = client.app_state["edge"].store
    monkeypatch.setattr(store, "_connect_loop", never_connects)  # this instance only
    return "linkedge-edge"


def stall_the_subscriber(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(pubsub, "open_connection", never_connects)  # the liveness probe keeps its own
    return "linkedge-edge-sub"


@pytest.mark.parametrize("stall", [stall_the_store, stall_the_subscriber], ids=["store", "subscriber"])
def test_healthz_fails_when_a_redis_client_is_stuck_while_redis_answers(env, monkeypatch, stall):
    """Issue 10 item 6: a client whose reconnect never completes makes /healthz fail, once past the
    bound and once Redis has answered fresh connections for longer than any reconnect backoff."""
    bound = 0.5
    with private_redis() as (url, _server):
        own = redis.Redis.from_url(url)
        with edge_client(settings_for(env, redis_url=url, key_prefix=PREFIX, liveness_bound=bound)) as client:
            assert client.get("/healthz").status_code == 200
            name = stall(client, monkeypatch)
            assert kill_connections(own, name) == 1
            assert client.get("/healthz").status_code == 200  # within the bound: it may still come back
            assert wait_until(lambda: client.get("/healthz").status_code == 503, timeout=bound + GRACE + 3)
            assert own.ping()  # Redis answers others all along
            response = client.get("/healthz")
            assert (response.status_code, response.text) == (503, "unavailable")
            assert response.headers["cache-control"] == "no-store"


def test_healthz_stays_200_through_a_plain_redis_outage(env):
    """Redis down for every client is an outage, not a stuck process: restarting would not help."""
    bound = 0.3
    port = free_port()
    with private_redis(port=port) as (url, server):
        with edge_client(settings_for(env, redis_url=url, key_prefix=PREFIX, liveness_bound=bound)) as client:
            server.terminate()
            server.wait(10)
            deadline = time.monotonic() + bound + 1.5  # well past the bound, with a probe or two refused
            while time.monotonic() < deadline:
                assert client.get("/healthz").status_code == 200
                time.sleep(0.05)
            assert client.get("/readyz").json() == {"status": "unavailable"}  # not ready, though alive
            with private_redis(port=port):
                assert wait_until(lambda: client.get("/readyz").status_code == 200, timeout=10)
                assert client.get("/healthz").status_code == 200


def test_a_miss_is_a_503_not_a_404_while_the_lost_cache_is_being_rebuilt(env) -> None:
    """Redis came back empty: until the rebuild writes the ready sentinel again, a link that is not
    in Redis may only be not yet rebuilt, so the edge answers 503 (retry) rather than 404 (gone)."""
    from redirector.keys import ready_key

    r = redis.Redis.from_url(env["REDIS_URL"])
    prefix = env["KEY_PREFIX"]
    settings = settings_for(env, local_cache=False)
    try:
        put_link(r, prefix, "kept", "https://example.com/kept")
        with edge_client(settings) as client:
            # Never built (no sentinel seen yet): a miss is a 404, as on a fresh install.
            assert client.get("/gone", headers=BROWSER).status_code == 404
        r.set(ready_key(prefix), "1")
        with edge_client(settings) as client:
            # A fresh process that only ever read a record that exists learns the cache was built.
            assert client.get("/kept", headers=BROWSER).status_code == 302
            # Redis loses everything (the sentinel too).
            r.delete(ready_key(prefix), link_key(prefix, "kept"))
            time.sleep(1.1)  # past the second a "ready" answer is trusted
            lost = client.get("/kept", headers=BROWSER)
            assert lost.status_code == 503 and lost.headers["retry-after"] == "1"
            # The rebuild puts the record and then the sentinel back.
            put_link(r, prefix, "kept", "https://example.com/kept")
            r.set(ready_key(prefix), "1")
            assert client.get("/kept", headers=BROWSER).headers["location"] == "https://example.com/kept"
            assert client.get("/gone", headers=BROWSER).status_code == 404
    finally:
        for key in r.scan_iter(match=f"{prefix}*"):
            r.delete(key)
        r.close()
