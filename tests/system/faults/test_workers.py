"""A worker killed with SIGKILL loses and doubles nothing: alone (restarted), or beside another
worker that takes its shards over once their leases expire."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.system.faults.processes import wait_for
from tests.system.faults.stack import SHARDS, Stack
from tests.system.faults.traffic import Clicks

pytestmark = pytest.mark.timeout(120)
LEASE_WAIT = 10.0  # seconds for a worker to hold the shards of a dead one (leases last LEASE_MS)


def test_worker_sigkill_counts_exactly(stack_factory: Callable[..., Stack], figures: dict[str, Any]) -> None:
    stack = stack_factory()
    with Clicks(stack.edge_ports, stack.targets, rate=120) as clicks:
        wait_for(lambda: stack.counted() >= 50, "the worker to apply 50 clicks", detail=stack.logs)
        victim = stack.workers[0]
        dead = set(stack.leases().values())
        victim.kill_all()
        killed_at = time.monotonic()
        time.sleep(1.0)  # clicks go on, waiting in Redis
        stack.add_worker("worker-restarted")

        def taken_over() -> bool:
            held = stack.leases()
            return len(held) == SHARDS and not set(held.values()) & dead

        wait_for(taken_over, "the new worker to hold every shard", timeout=LEASE_WAIT, detail=stack.logs)
        took_over = time.monotonic() - killed_at
        time.sleep(0.5)
    figures.update(clicks=clicks.total, restarted_worker_had_all_shards_after_s=round(took_over, 2))
    figures["caught_up_s"] = round(stack.assert_exact(clicks), 2)
    assert clicks.status_summary() == {"302": clicks.total}, clicks.status_summary()


def test_two_edges_two_workers_one_worker_killed(stack_factory: Callable[..., Stack], figures: dict[str, Any]) -> None:
    stack = stack_factory(edges=2, workers=2)
    owners = stack.leases()
    with Clicks(stack.edge_ports, stack.targets, rate=150) as clicks:
        wait_for(lambda: stack.counted() >= 50, "the workers to apply 50 clicks", detail=stack.logs)
        victim, survivor = stack.workers
        victim.kill_all()
        killed_at = time.monotonic()

        def taken_over() -> bool:
            held = stack.leases()
            return len(held) == SHARDS and len(set(held.values())) == 1

        wait_for(taken_over, "the surviving worker to take every shard", timeout=LEASE_WAIT, detail=stack.logs)
        figures["takeover_s"] = round(time.monotonic() - killed_at, 2)
        assert survivor.running()
        (heir,) = set(stack.leases().values())
        assert heir in owners.values()
        time.sleep(0.5)
    assert all(clicks.by_port[p] > 0 for p in stack.edge_ports), clicks.by_port
    figures["clicks"] = clicks.total
    figures["caught_up_s"] = round(stack.assert_exact(clicks), 2)
    assert clicks.status_summary() == {"302": clicks.total}, clicks.status_summary()
