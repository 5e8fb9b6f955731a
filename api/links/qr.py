"""QR codes of short URLs (segno), as SVG or PNG."""

from __future__ import annotations

import io

import segno

MIN_SIZE = 64
MAX_SIZE = 2048
DEFAULT_SIZE = 300
BORDER = 4  # the quiet zone the QR standard asks for, in modules
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


def render_qr(data: str, fmt: str, size: int = DEFAULT_SIZE) -> bytes:
    """Render ``data`` at about ``size`` pixels square (quiet zone included).

    SVG scales exactly; PNG uses the largest whole number of pixels per module that fits,
    since fractional modules blur and scan badly.
    """
    qr = segno.make(data, error="m")
    modules = qr.symbol_size(scale=1, border=BORDER)[0]
    out = io.BytesIO()
    if fmt == "svg":
        qr.save(out, kind="svg", scale=size / modules, border=BORDER, dark="#000", light="#fff", xmldecl=False)
    elif fmt == "png":
        qr.save(out, kind="png", scale=max(1, size // modules), border=BORDER, dark="#000", light="#fff")
    else:
        raise ValueError(f"unknown QR format {fmt!r}")
    return out.getvalue()
