"""Redis goes away under clicks and API calls.

* Down for a while, data kept (AOF): cached links keep redirecting, their clicks wait in the
  edges' buffers, and every one is counted exactly once; links serve within 1 s of Redis's return.
* Restarted without persistence: the serving cache is rebuilt from PostgreSQL by the worker, links
  serve within 1 s of the rebuild, and what is lost is at most the events Redis held that the
  worker had not applied yet; nothing is counted twice.
* Restarted 20 times in a row: no edge is left unable to reach Redis (its hot-path client and its
  invalidation subscriber both come back), and the clicks are still counted exactly.

The API answers 503 or its usual statuses throughout, never another 5xx.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from redirector.keys import ready_key
from tests.system.faults.processes import http_status, wait_for
from tests.system.faults.stack import PREFIX, Stack
from tests.system.faults.traffic import ApiCalls, Clicks, Target, fetch

pytestmark = pytest.mark.timeout(150)
OUTAGE = 3.0  # seconds Redis stays down
SERVE_WITHIN = 1.0  # seconds after Redis returns (or after a rebuild) until every link serves
RESTARTS = 20


def check_api(api: ApiCalls) -> None:
    assert not api.server_errors(), (api.server_errors(), api.samples)
    assert not api.count("no reply"), api.statuses


def test_redis_outage_with_data_kept_counts_exactly(
    stack_factory: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    stack = stack_factory(persistent=True)
    warm, cold = stack.targets[:15], stack.targets[15:]
    stack.warm(warm)
    with ApiCalls(stack.api_url, stack.key.headers, warm[0].link_id) as api:
        with Clicks(stack.edge_ports, warm, rate=120) as clicks:
            wait_for(lambda: stack.counted() >= 50, "the worker to apply 50 clicks", detail=stack.logs)
            stack.redis.stop()
            down_at, api_before = clicks.total, api.snapshot()
            time.sleep(OUTAGE / 2)
            cold_during = fetch(stack.edge_ports[0], cold[0].code)
            time.sleep(OUTAGE / 2)
            during, api_during = clicks.total - down_at, api.since(api_before)
            stack.redis.start()
            stack.not_serving.clear()
            back = stack.wait_serving(stack.targets, "every link to serve after Redis returned")
            figures["answers_before_serving"] = stack.take_not_serving()
            time.sleep(1.0)
        time.sleep(0.5)
    figures.update(
        clicks=clicks.total,
        cached_clicks_during_outage=during,
        uncached_link_during_outage=cold_during[0],
        every_link_serving_after_return_s=round(back, 3),
        statuses=clicks.status_summary(),
        api=dict(api.statuses),
        api_during_outage=api_during,
    )
    assert during > 0.5 * OUTAGE * 120, "cached links did not keep redirecting while Redis was down"
    assert cold_during[0] == 503, cold_during
    stack.workers_alive("while Redis was down")
    figures["caught_up_s"] = round(stack.assert_exact(clicks), 2)
    assert back < SERVE_WITHIN, f"links served again only {back:.2f} s after Redis returned"
    check_api(api)


def test_redis_restart_without_persistence_loses_only_unapplied_events(
    stack_factory: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    stack = stack_factory(persistent=False, edges=2)
    stack.warm(stack.targets)
    client = stack.client()
    with ApiCalls(stack.api_url, stack.key.headers, stack.targets[0].link_id) as api:
        with Clicks(stack.edge_ports, stack.targets, rate=120) as clicks:
            wait_for(lambda: stack.counted() >= 50, "the worker to apply 50 clicks", detail=stack.logs)
            stack.redis.stop(signal.SIGKILL)
            sent_at_kill = clicks.total
            time.sleep(0.5)  # commits in flight land; the worker can read nothing more
            applied_at_kill = stack.counted()
            time.sleep(0.5)
            stack.redis.start()
            rebuilt = wait_for(
                lambda: stack.workers_alive("while Redis was down") and bool(client.exists(ready_key(PREFIX))),
                "the worker to rebuild the cache",
                timeout=15,
                detail=stack.logs,
            )
            stack.not_serving.clear()
            after_rebuild = stack.wait_serving(stack.targets, "every link to serve after the rebuild")
            figures["answers_before_serving"] = stack.take_not_serving()
            figures["not_found_after_return"] = sum(n for (_, s), n in clicks.statuses.items() if s == "404")
            time.sleep(1.0)
        time.sleep(0.5)
    client.close()
    stack.settle()
    counted = stack.counted()
    lost, bound = clicks.total - counted, sent_at_kill - applied_at_kill
    figures.update(
        clicks=clicks.total,
        lost=lost,
        unapplied_at_kill=bound,
        rebuilt_after_return_s=round(rebuilt, 2),
        every_link_serving_after_rebuild_s=round(after_rebuild, 3),
        statuses=clicks.status_summary(),
        api=dict(api.statuses),
    )
    assert not clicks.wrong, clicks.wrong[:5]
    assert counted <= clicks.total + sum(clicks.unanswered.values()), "clicks were counted twice"
    assert lost <= bound, f"lost {lost} clicks; Redis held only {bound} unapplied ones when it died"
    stack.workers_alive("after Redis restarted")
    assert after_rebuild < SERVE_WITHIN, f"links served again only {after_rebuild:.2f} s after the rebuild"
    check_api(api)


def test_twenty_redis_restarts_leave_no_edge_disconnected(
    stack_factory: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    stack = stack_factory(persistent=True, edges=2)
    warm, cold = stack.targets[:15], stack.targets[15:]
    stack.warm(warm)
    rng = random.Random(20)
    with ApiCalls(stack.api_url, stack.key.headers, warm[0].link_id) as api:
        with Clicks(stack.edge_ports, warm, rate=100) as clicks:
            wait_for(lambda: stack.counted() >= 30, "the worker to apply 30 clicks", detail=stack.logs)
            started = time.monotonic()
            for i in range(RESTARTS):
                if i:
                    time.sleep(rng.uniform(0.05, 0.3))  # up for 0.05 to 0.3 s, down for up to 0.3 s
                stack.redis.stop()
                time.sleep(rng.uniform(0.0, 0.3))
                stack.redis.start()
            figures["restarts_took_s"] = round(time.monotonic() - started, 2)
            # The hot path: links no edge has cached must be read from Redis.
            stack.not_serving.clear()
            back = stack.wait_serving(cold, "every edge to read Redis again")
            figures["answers_before_serving"] = stack.take_not_serving()
            ready = [http_status(port, "/readyz") for port in stack.edge_ports]
            # The subscriber: a changed link must stop redirecting the old way on every edge.
            changed = cold[0]  # not clicked: its counts stay out of it
            stack.warm([changed])
            r = _patch(stack, changed, "https://example.com/changed")
            assert r == 200, r
            new = Target(changed.link_id, changed.code, "https://example.com/changed")
            converged = stack.wait_serving([new], "the change to reach every edge")
            time.sleep(0.5)
    figures.update(
        clicks=clicks.total,
        every_edge_reading_redis_after_last_restart_s=round(back, 3),
        change_reached_every_edge_s=round(converged, 3),
        statuses=clicks.status_summary(),
        api=dict(api.statuses),
    )
    assert ready == [200] * len(stack.edges), ready
    assert back < SERVE_WITHIN, f"an edge read Redis again only {back:.2f} s after the last restart"
    assert converged < SERVE_WITHIN, f"a change reached every edge only after {converged:.2f} s"
    stack.workers_alive("during the Redis restarts")
    figures["caught_up_s"] = round(stack.assert_exact(clicks), 2)
    check_api(api)


def _patch(stack: Stack, target: Target, url: str) -> int:
    with httpx.Client(base_url=stack.api_url + "/api/v1", headers=stack.key.headers, timeout=10) as api:
        return api.patch(f"/links/{target.link_id}", json={"url": url}).status_code
