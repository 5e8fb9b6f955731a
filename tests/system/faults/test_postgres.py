"""PostgreSQL restarted, or down for a while, under clicks and API calls: every click is counted
exactly once when it is back, and the API answers 503 (never another 5xx) while it is away."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.system.faults.processes import wait_for
from tests.system.faults.stack import Stack
from tests.system.faults.traffic import ApiCalls, Clicks

pytestmark = pytest.mark.timeout(120)
OUTAGE = 3.0  # seconds PostgreSQL stays down


def test_postgres_restart_counts_exactly(stack_factory: Callable[..., Stack], figures: dict[str, Any]) -> None:
    stack = stack_factory()
    with ApiCalls(stack.api_url, stack.key.headers, stack.targets[0].link_id) as api:
        with Clicks(stack.edge_ports, stack.targets, rate=120) as clicks:
            wait_for(lambda: stack.counted() >= 50, "the worker to apply 50 clicks", detail=stack.logs)
            started = time.monotonic()
            stack.pg.restart()
            figures["restart_s"] = round(time.monotonic() - started, 2)
            time.sleep(1.5)
        time.sleep(0.5)
    figures.update(clicks=clicks.total, api=dict(api.statuses))
    figures["caught_up_s"] = round(stack.assert_exact(clicks), 2)
    assert clicks.status_summary() == {"302": clicks.total}, clicks.status_summary()
    stack.workers_alive("while PostgreSQL was away")
    assert not api.server_errors(), (api.server_errors(), api.samples)
    assert not api.count("no reply"), api.statuses


def test_postgres_outage_counts_exactly(stack_factory: Callable[..., Stack], figures: dict[str, Any]) -> None:
    stack = stack_factory()
    with ApiCalls(stack.api_url, stack.key.headers, stack.targets[0].link_id) as api:
        with Clicks(stack.edge_ports, stack.targets, rate=120) as clicks:
            wait_for(lambda: stack.counted() >= 50, "the worker to apply 50 clicks", detail=stack.logs)
            stack.pg.stop()
            down_at, api_before = clicks.total, api.snapshot()
            time.sleep(OUTAGE)
            during, api_during = clicks.total - down_at, api.since(api_before)
            stack.pg.start()
            waiting = clicks.total
            # The clicks that waited in Redis are applied soon after PostgreSQL is back.
            figures["backlog_applied_after_return_s"] = round(
                wait_for(lambda: stack.counted() >= waiting, "the backlog to be applied", detail=stack.logs), 2
            )
            time.sleep(1.0)
        time.sleep(0.5)
    figures.update(
        clicks=clicks.total, clicks_during_outage=during, api=dict(api.statuses), api_during_outage=api_during
    )
    assert during > 0.5 * OUTAGE * 120, "clicks did not flow while PostgreSQL was down"
    stack.assert_exact(clicks)
    assert clicks.status_summary() == {"302": clicks.total}, clicks.status_summary()
    stack.workers_alive("while PostgreSQL was away")
    assert api_during.get("GET 503", 0) > 0, f"the API never answered 503 while PostgreSQL was down: {api_during}"
    assert not api.server_errors(), (api.server_errors(), api.samples)
    assert not api.count("no reply"), api.statuses
