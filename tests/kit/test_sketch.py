"""kit.sketch: visitor hashes, exact and dense sketches, their bytes, and merges."""

from __future__ import annotations

import random

import pytest

from kit.sketch import EXACT_MAX, M, Sketch, SketchError, decode_sketch, merge_count, visitor_hash, visitor_hashes


def hashes(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(64) for _ in range(n)]


def sketch_of(values: list[int]) -> Sketch:
    sketch = Sketch()
    sketch.add_many(values)
    return sketch


def test_visitor_hash_takes_the_edges_hex_as_is_and_hashes_anything_else() -> None:
    assert visitor_hash("00000000000000ff") == 255
    assert visitor_hash("ffffffffffffffff") == 2**64 - 1
    for other in ("not hex at all!!", "abc", ""):
        h = visitor_hash(other)
        assert h == visitor_hash(other) and 0 <= h < 2**64
    assert visitor_hash("not hex at all!!") != visitor_hash("not hex at all!?")
    mixed = ["00000000000000ff", "x", "0123456789abcdef"]
    assert visitor_hashes(mixed) == [visitor_hash(v) for v in mixed]
    assert visitor_hashes(mixed[::2]) == [255, 0x0123456789ABCDEF]


def test_an_empty_sketch_counts_zero_in_every_form() -> None:
    assert Sketch().count() == 0
    assert decode_sketch(None).count() == decode_sketch(b"").count() == 0
    assert decode_sketch(Sketch().encode()).count() == 0
    assert merge_count([]) == merge_count([None, b""]) == 0


def test_a_small_sketch_is_exact_and_round_trips() -> None:
    values = hashes(300, seed=1)
    sketch = sketch_of(values + values[:50])  # repeats count once
    assert sketch.count() == 300
    data = sketch.encode()
    assert len(data) == 1 + 8 * 300
    again = decode_sketch(data)
    assert again.exact == set(values) and again.count() == 300 and again.encode() == data


def test_past_exact_max_it_turns_dense_and_stays_4_kib() -> None:
    assert sketch_of(hashes(EXACT_MAX, seed=2)).exact is not None
    dense = sketch_of(hashes(EXACT_MAX + 1, seed=2))
    assert dense.exact is None
    data = dense.encode()
    assert len(data) == 1 + M
    again = decode_sketch(data)
    assert again.registers == dense.registers and again.count() == dense.count()
    assert abs(dense.count() - (EXACT_MAX + 1)) <= 0.05 * (EXACT_MAX + 1)


def test_merging_exact_sketches_is_their_union() -> None:
    a, b = hashes(200, seed=3), hashes(200, seed=4)
    left = sketch_of(a + b[:100])
    left.merge(sketch_of(b))
    assert left.exact == set(a) | set(b) and left.count() == 400
    assert merge_count([sketch_of(a).encode(), None, sketch_of(b).encode(), sketch_of(a).encode()]) == 400


@pytest.mark.parametrize(("small", "big"), [(100, 3000), (3000, 100), (3000, 4000)])
def test_a_merge_is_the_sketch_of_the_union_whatever_the_forms(small: int, big: int) -> None:
    a, b = hashes(small, seed=5), hashes(big, seed=6)
    union = sketch_of(a + b)
    for first, second in ((a, b), (b, a)):
        merged = sketch_of(first)
        merged.merge(sketch_of(second))
        assert merged.exact is None and merged.registers == union.registers
        assert merged.count() == union.count()
    assert merge_count([sketch_of(a).encode(), sketch_of(b).encode()]) == union.count()
    assert abs(union.count() - (small + big)) <= 0.05 * (small + big)


@pytest.mark.parametrize(
    "data",
    [b"\x03" + bytes(8), b"\x01" + bytes(7), b"\x02" + bytes(M - 1), b"\x02" + bytes(M + 1), b"\x00"],
)
def test_malformed_bytes_are_a_sketch_error(data: bytes) -> None:
    with pytest.raises(SketchError):
        decode_sketch(data)
    assert issubclass(SketchError, ValueError)
