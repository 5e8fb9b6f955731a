"""The few bodies the edge renders itself: error pages, the password form, a thank-you banner.

Raw ASGI helpers live here too, so the hot path sends a response as two messages without
building a Starlette ``Response``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from starlette.types import Send

Headers = list[tuple[bytes, bytes]]

HTML = b"text/html; charset=utf-8"
JSON = b"application/json"
NO_STORE = b"no-store"
# The edge's own pages load nothing and run nothing.
PLAIN_CSP = (
    b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;display:flex;min-height:100vh;align-items:center;"
    "justify-content:center;background:#f6f7f9;color:#1d2330}main{max-width:26rem;padding:2rem;text-align:center}"
    "h1{font-size:1.4rem;margin:0 0 .5rem}p{margin:.5rem 0;color:#4a5263}"
    "input,button{font:inherit;padding:.6rem .8rem;border-radius:.5rem;border:1px solid #c6cbd6;width:100%;"
    "box-sizing:border-box;margin-top:.6rem}button{background:#1d2330;color:#fff;border:0;cursor:pointer}"
    ".err{color:#b42318}"
)

MESSAGES = {
    400: ("bad_request", "Bad request", "The request could not be understood."),
    401: ("password_required", "Password required", "This link is protected by a password."),
    404: ("not_found", "Link not found", "This link does not exist or has been disabled."),
    405: ("method_not_allowed", "Method not allowed", "This method is not supported here."),
    410: ("gone", "Link expired", "This link has expired and no longer redirects."),
    413: ("too_large", "Too large", "The submitted form is too large."),
    415: ("unsupported_media_type", "Unsupported form", "Send the form as application/x-www-form-urlencoded."),
    422: ("validation_failed", "Check your input", "Some fields were not valid."),
    429: ("rate_limited", "Slow down", "Too many attempts. Try again in a minute."),
    503: ("unavailable", "Temporarily unavailable", "Please try again in a moment."),
}


def page(title: str, body: str) -> bytes:
    """A complete, self-contained HTML document (no external requests)."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>'
        f"<body><main>{body}</main></body></html>"
    ).encode()


def wants_json(accept: bytes) -> bool:
    return b"json" in accept and b"html" not in accept


def error_body(status: int, accept: bytes, message: str | None = None, title: str | None = None) -> tuple[bytes, bytes]:
    """``(content_type, body)`` for an error: JSON ``{"error": {...}}`` or a small HTML page."""
    code, default_title, default = MESSAGES.get(status, ("error", "Error", "Something went wrong."))
    text = message or default
    title = title or default_title
    if wants_json(accept):
        return JSON, json.dumps({"error": {"code": code, "message": text}}).encode()
    return HTML, page(title, f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>")


def password_form(action: str, failed: bool = False) -> bytes:
    error = '<p class="err" role="alert">Wrong password. Try again.</p>' if failed else ""
    return page(
        "Password required",
        "<h1>Password required</h1><p>Enter the password to continue.</p>"
        f'{error}<form method="post" action="{html.escape(action)}">'
        '<input type="password" name="password" aria-label="Password" autocomplete="current-password" '
        'required autofocus><button type="submit">Continue</button></form>',
    )


THANKS_BANNER = (
    b'<p role="status" style="margin:0;padding:.75rem 1rem;text-align:center;background:#e7f6ec;color:#14532d;'
    b'font:15px/1.4 system-ui,sans-serif">Thanks! Your submission was received.</p>'
)


def with_banner(document: bytes, banner: bytes = THANKS_BANNER) -> bytes:
    """Insert ``banner`` right after the ``<body ...>`` tag (or at the start when there is none)."""
    start = document.find(b"<body")
    end = document.find(b">", start) if start != -1 else -1
    if end == -1:
        return banner + document
    return document[: end + 1] + banner + document[end + 1 :]


async def send_response(send: Send, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes = b"") -> None:
    """Send a complete response; ``content-length`` is added here."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_error(
    send: Send,
    status: int,
    accept: bytes,
    message: str | None = None,
    extra: Sequence[tuple[bytes, bytes]] = (),
    title: str | None = None,
) -> None:
    content_type, body = error_body(status, accept, message, title)
    headers: Headers = [(b"content-type", content_type), (b"cache-control", NO_STORE), *extra]
    if content_type == HTML:
        headers.append((b"content-security-policy", PLAIN_CSP))
    await send_response(send, status, headers, body)
