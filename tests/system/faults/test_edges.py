"""An edge stopped while it serves clicks. SIGTERM: it finishes its requests and flushes its event
buffer, so every click it redirected is counted. SIGKILL: what its buffer held is lost, which at
the default ``EVENT_FLUSH_MS`` (5 ms) is at most the clicks of its last moments; nothing is counted
twice. The other edge serves on throughout."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.system.faults.processes import wait_for
from tests.system.faults.stack import Stack
from tests.system.faults.traffic import Clicks

pytestmark = pytest.mark.timeout(120)
SLACK = 0.5  # seconds beyond EVENT_FLUSH_MS for the XADD in flight and a busy event loop


def test_edge_sigterm_counts_exactly(stack_factory: Callable[..., Stack], figures: dict[str, Any]) -> None:
    stack = stack_factory(edges=2)
    stopping, other = stack.edges
    with Clicks(stack.edge_ports, stack.targets, rate=150) as clicks:
        wait_for(lambda: clicks.by_port[stopping.port] >= 100, "100 clicks on the edge to stop", detail=stack.logs)
        started = time.monotonic()
        code = stopping.terminate()
        figures["stop_s"] = round(time.monotonic() - started, 2)
        clicks.closed_ports.add(stopping.port)
        time.sleep(1.0)
    assert code == 0, stopping.tail()
    assert clicks.by_port[other.port] > 0
    figures.update(clicks=clicks.total, statuses=clicks.status_summary(), unanswered=sum(clicks.unanswered.values()))
    figures["caught_up_s"] = round(stack.assert_exact(clicks), 2)
    # Visitors of the stopping edge saw their requests answered, or their connection closed or refused.
    assert {s for _, s in clicks.statuses if not s.startswith(("no reply", "refused"))} == {"302"}, clicks.statuses


@pytest.mark.parametrize("flush_ms", [5, 500])
def test_edge_sigkill_loses_at_most_its_buffer(
    stack_factory: Callable[..., Stack], figures: dict[str, Any], flush_ms: int
) -> None:
    """The buffer holds the clicks since the last flush: ``EVENT_FLUSH_MS`` worth, and the lost
    clicks are at most those the killed edge answered in that window (plus :data:`SLACK`). Each
    edge gets links of its own, so the other edge's count can be checked exactly."""
    stack = stack_factory(edges=2, edge_env={"EVENT_FLUSH_MS": str(flush_ms)})
    victim, other = stack.edges
    mine, theirs = stack.targets[:10], stack.targets[10:]
    with Clicks([victim.port], mine, rate=75, seed=1) as killed, Clicks([other.port], theirs, rate=75, seed=2) as kept:
        wait_for(lambda: killed.total >= 100, "100 clicks on the edge to kill", detail=stack.logs)
        victim.kill_all()
        killed_at = time.monotonic()
        killed.closed_ports.add(victim.port)
        time.sleep(1.0)
    stack.settle()
    per_link = stack.per_link()
    counted = sum(per_link[t.link_id] for t in mine)
    lost = killed.total - counted
    window = flush_ms / 1000 + SLACK
    recent = killed.answered(victim.port, killed_at - window, killed_at + 0.1)
    in_flight = killed.unanswered[victim.port]
    figures.update(
        killed_edge_clicks=killed.total,
        other_edge_clicks=kept.total,
        lost=lost,
        window_s=window,
        killed_edge_clicks_in_window=recent,
        unanswered_at_kill=in_flight,
    )
    assert not killed.wrong and not kept.wrong, (killed.wrong + kept.wrong)[:5]
    # The other edge lost nothing and doubled nothing.
    assert {t.link_id: per_link[t.link_id] for t in theirs} == {t.link_id: kept.ok[t.link_id] for t in theirs}
    # Never counted twice: at most the requests that never got an answer can have been counted unseen.
    assert counted <= killed.total + in_flight, (counted, killed.total, in_flight)
    assert lost <= recent, f"lost {lost} clicks, more than the {recent} the killed edge answered in its last {window} s"
