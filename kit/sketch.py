"""Distinct-visitor sketches: exact for small sets, HyperLogLog beyond, bounded at 4 KiB.

Visitors arrive as 64-bit hashes (16 hex chars from the edge), already uniform, so they index
the sketch directly. A sketch holds the exact set of hashes while it has at most
``EXACT_MAX`` of them (exact counts for the common small page-hour) and turns into a dense
HyperLogLog of ``M = 2**P`` one-byte registers past that. Either form is at most 4 KiB.

Error of the dense form: standard error 1.04 / sqrt(M) = 1.04 / 64 ≈ 1.6 % (about 95 % of
estimates within ±3.3 %); small cardinalities use linear counting, as in the HyperLogLog paper.
Merging is lossless (set union, register max), so a range's sketch is the merge of its hours'.

Stdlib only, so the API can merge and estimate with it too.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable
from itertools import repeat

P = 12
M = 1 << P
EXACT_MAX = 512  # 512 hashes x 8 bytes = the dense form's 4 KiB
_EXACT = 1
_DENSE = 2
_LOW = 64 - P
_LOW_MASK = (1 << _LOW) - 1
_ALPHA = 0.7213 / (1 + 1.079 / M)


def visitor_hash(visitor: str) -> int:
    """The 64-bit hash of a visitor id: the edge's 16 hex chars as is, anything else hashed."""
    if len(visitor) == 16:
        try:
            return int(visitor, 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(visitor.encode(), digest_size=8).digest(), "big")


def visitor_hashes(visitors: Iterable[str]) -> list[int]:
    """:func:`visitor_hash` of many ids; the common all-hex case runs in C."""
    visitors = list(visitors)
    if all(len(v) == 16 for v in visitors):
        try:
            return list(map(int, visitors, repeat(16)))
        except ValueError:
            pass
    return [visitor_hash(v) for v in visitors]


class SketchError(ValueError):
    """Stored sketch bytes could not be decoded."""


class Sketch:
    """A mergeable distinct-count sketch of 64-bit hashes."""

    __slots__ = ("exact", "registers")

    def __init__(self) -> None:
        self.exact: set[int] | None = set()
        self.registers: bytearray | None = None

    def add_many(self, hashes: Iterable[int]) -> None:
        if self.exact is not None:
            self.exact.update(hashes)
            if len(self.exact) > EXACT_MAX:
                self._densify()
            return
        regs = self.registers
        assert regs is not None
        for h in hashes:
            idx = h >> _LOW
            rank = _LOW + 1 - (h & _LOW_MASK).bit_length()
            if rank > regs[idx]:
                regs[idx] = rank

    def _densify(self) -> None:
        values = self.exact or set()
        self.exact = None
        self.registers = bytearray(M)
        self.add_many(values)

    def merge(self, other: Sketch) -> None:
        """Union ``other`` into this sketch."""
        if other.exact is not None:
            self.add_many(other.exact)
            return
        assert other.registers is not None
        if self.exact is not None:
            self._densify()
        assert self.registers is not None
        self.registers = bytearray(map(max, self.registers, other.registers))

    def count(self) -> int:
        """Exact while small, else the HyperLogLog estimate."""
        if self.exact is not None:
            return len(self.exact)
        regs = self.registers
        assert regs is not None
        zeros = regs.count(0)
        estimate = _ALPHA * M * M / math.fsum(2.0**-r for r in regs)
        if estimate <= 2.5 * M and zeros:
            estimate = M * math.log(M / zeros)
        return round(estimate)

    def encode(self) -> bytes:
        if self.exact is not None:
            return bytes([_EXACT]) + struct.pack(f">{len(self.exact)}Q", *sorted(self.exact))
        assert self.registers is not None
        return bytes([_DENSE]) + bytes(self.registers)


def decode_sketch(data: bytes | None) -> Sketch:
    """A sketch from its stored bytes; ``None`` or empty bytes is the empty sketch."""
    sketch = Sketch()
    if not data:
        return sketch
    kind, body = data[0], data[1:]
    if kind == _EXACT and len(body) % 8 == 0:
        sketch.exact = set(struct.unpack(f">{len(body) // 8}Q", body))
        return sketch
    if kind == _DENSE and len(body) == M:
        sketch.exact = None
        sketch.registers = bytearray(body)
        return sketch
    raise SketchError(f"malformed sketch ({len(data)} bytes, kind {kind})")


def merge_count(blobs: Iterable[bytes | None]) -> int:
    """Distinct visitors across stored sketches (e.g. every hour of a range)."""
    total = Sketch()
    for blob in blobs:
        if blob:
            total.merge(decode_sketch(blob))
    return total.count()
