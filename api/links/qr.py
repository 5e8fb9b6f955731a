"""QR codes of short URLs (segno), as SVG or PNG, at exactly the size asked for."""

from __future__ import annotations

import io
import struct
import zlib

import segno

MIN_SIZE = 64
MAX_SIZE = 2048
DEFAULT_SIZE = 300
BORDER = 4  # the quiet zone the QR standard asks for, in modules
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}

# Appended to the short URL a QR code encodes: the edge counts the hit as source "qr" and never
# passes the marker on (redirector.links.merge_query drops it).
QR_MARKER = "?qr=1"


def render_qr(data: str, fmt: str, size: int = DEFAULT_SIZE) -> bytes:
    """Render ``data`` as a ``size`` x ``size`` image (quiet zone included).

    SVG scales exactly. PNG modules are a whole number of pixels (fractional modules blur and
    scan badly), so the pixels left over widen the quiet zone; only a symbol too large for
    ``size`` with its 4-module quiet zone makes the image larger.
    """
    qr = segno.make(data, error="m")
    if fmt == "svg":
        modules = qr.symbol_size(scale=1, border=BORDER)[0]
        out = io.BytesIO()
        qr.save(out, kind="svg", scale=size / modules, border=BORDER, dark="#000", light="#fff", xmldecl=False)
        return out.getvalue()
    if fmt == "png":
        return _png([bytes(row) for row in qr.matrix], size)
    raise ValueError(f"unknown QR format {fmt!r}")


def _png(matrix: list[bytes], size: int) -> bytes:
    """A 1-bit grayscale PNG of ``matrix`` (1 = dark module), centred on a white square."""
    n = len(matrix)
    size = max(size, n + 2 * BORDER)
    scale = size // (n + 2 * BORDER)
    offset = (size - n * scale) // 2
    padding = -size % 8

    def scanline(row: bytes) -> bytes:
        # One filter byte (0: none), then the pixels, 1 bit each, white (1) unless a dark module covers it.
        bits = "".join("0" * scale if dark else "1" * scale for dark in row)
        line = "1" * offset + bits + "1" * (size - offset - len(bits)) + "0" * padding
        return b"\x00" + int(line, 2).to_bytes(len(line) // 8, "big")

    blank = scanline(b"")
    rows = [scanline(row) for row in matrix]
    raw = b"".join(rows[(y - offset) // scale] if 0 <= y - offset < n * scale else blank for y in range(size))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)  # 1-bit grayscale, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
