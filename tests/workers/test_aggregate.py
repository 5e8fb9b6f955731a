"""The in-memory sums and the visitor sketch, without Redis or PostgreSQL."""

from __future__ import annotations

import random
import uuid

import pytest

from kit.sketch import EXACT_MAX, Sketch, SketchError, decode_sketch, merge_count, visitor_hashes
from redirector.events import CLICK, VIEW, Event, encode_batch, encode_event
from tests.workers.conftest import BASE_MS, World, random_events
from workers.aggregate import Aggregator, Batch


def world() -> World:
    teams = [str(uuid.uuid4()) for _ in range(2)]
    links = {str(uuid.uuid4()): teams[i % 2] for i in range(5)}
    pages = {str(uuid.uuid4()): teams[i % 2] for i in range(2)}
    blocks = {str(uuid.uuid4()): page for page in pages for _ in range(2)}
    return World(teams, links, pages, blocks)


def snapshot(b: Batch) -> dict[str, object]:
    dims: dict[tuple[int, int, str], int] = {}
    for (i, hour), tally in b.dims.items():
        for combo, n in tally.items():
            if n:
                dims[(i, hour, combo)] = n
    return {
        "hours": {k: (h.team_id, h.clicks, h.views, h.bots, h.visitors) for k, h in b.hours.items()},
        "dims": dims,
        "totals": b.totals,
        "links": b.links,
        "forms": b.forms,
        "events": (b.events, b.bad, dict(b.kinds), b.newest_ms),
    }


def test_bulk_counting_matches_row_by_row() -> None:
    events = random_events(world(), 5000, seed=5, hours=3)
    payloads = [encode_batch(encode_event(e) for e in events[i : i + 50]) for i in range(0, len(events), 50)]
    fast = Aggregator()
    for p in payloads:
        fast.add_entry(p)
    slow = Aggregator()
    slow._add_rows([line.split("\t") for p in payloads for line in p.decode().split("\n")])
    assert snapshot(fast.finish()) == snapshot(slow.finish())
    assert fast.batch.events == 5000


def test_lenient_lines() -> None:
    w = world()
    link, team = next(iter(w.links.items()))
    page = next(iter(w.pages))
    good = encode_event(Event(CLICK, BASE_MS, team, link_id=link, country="FR"))
    lines = [
        good,
        good.replace(link, link.upper()),  # a non-canonical id: counted under the canonical one
        "\t".join(["1", VIEW, str(BASE_MS), team, "", page]),  # short line: trailing fields default
        "2\tc\t1\tfuture-version",
        "garbage",
        good.replace(link, "not-a-uuid"),
        good.replace(str(BASE_MS), "-5"),
        "\t".join(
            ["1", "f", str(BASE_MS), team, "", page, "", "", "", "", "", "", "", "0", "", "[1]"]
        ),  # not an object
    ]
    agg = Aggregator()
    agg.add_entry("\n".join(lines).encode() + b"\x00\x1f")
    agg.add_entry(None)
    batch = agg.finish()
    hour = BASE_MS - BASE_MS % 3_600_000
    assert batch.hours[(link, hour)].clicks == 2
    assert batch.hours[(page, hour)].views == 1
    assert batch.events == 3 and batch.bad == 6
    assert batch.links == {link: [2, BASE_MS]}


def test_sketch_is_exact_when_small_and_close_when_large() -> None:
    rng = random.Random(3)
    small = Sketch()
    small.add_many(rng.getrandbits(64) for _ in range(EXACT_MAX))
    assert small.exact is not None and small.count() == EXACT_MAX
    assert decode_sketch(small.encode()).count() == EXACT_MAX
    for n in (2_000, 50_000):
        big = Sketch()
        values = [rng.getrandbits(64) for _ in range(n)]
        big.add_many(values)
        assert big.exact is None and len(big.encode()) == 4097
        assert abs(big.count() - n) < n * 0.05  # 3 standard errors
        halves = Sketch(), Sketch()
        halves[0].add_many(values[: n // 2 + 100])
        halves[1].add_many(values[n // 2 :])
        assert merge_count([halves[0].encode(), None, halves[1].encode()]) == big.count()


def test_sketch_input_and_errors() -> None:
    assert visitor_hashes(["00000000000000ff", "not hex at all!!"])[0] == 255
    assert visitor_hashes(["x"]) == visitor_hashes(["x"])
    assert decode_sketch(None).count() == 0
    with pytest.raises(SketchError):
        decode_sketch(b"\x02short")
