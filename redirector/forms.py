"""Form posts on the edge: bounded body reading and rate limits in Redis.

The edge takes two kinds of POST: the password form of a protected link and bio form blocks.
Neither needs ``python-multipart``: both are small ``application/x-www-form-urlencoded`` bodies.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from urllib.parse import parse_qsl

from starlette.types import Receive

from redirector.edge import Edge
from redirector.resp.client import REDIS_ERRORS

MAX_FORM_BYTES = 8 * 1024
MAX_FORM_FIELDS = 50
EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,63}$")


class FormTooLarge(Exception):
    """The body exceeded the size limit or the number of fields."""


async def read_form(receive: Receive, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """Read and parse an urlencoded body; raises :class:`FormTooLarge` past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise FormTooLarge
        chunks.append(body)
        if not message.get("more_body", False):
            break
    text = b"".join(chunks).decode("utf-8", "replace")
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))
    except ValueError as e:  # more fields than allowed
        raise FormTooLarge from e


async def rate_limited(edge: Edge, limits: Sequence[tuple[str, int]], window: int = 60) -> bool:
    """Fixed-window counters: true once any ``(key, limit)`` was hit more than ``limit`` times in
    ``window`` s (every counter counts this request).

    All the SET NX EX and INCR commands are issued in the same tick, so the pipelining client sends
    them in one round trip. When Redis is down the limiter lets the request through.
    """
    store = edge.store
    commands = []
    for key, _ in limits:
        commands += [store.execute("SET", key, "0", "EX", window, "NX"), store.execute("INCR", key)]
    try:
        replies = await asyncio.gather(*commands)
    except REDIS_ERRORS:
        edge.metrics.redis_errors += 1
        return False
    return any(int(count) > limit for count, (_, limit) in zip(replies[1::2], limits, strict=True))


def valid_email(value: str) -> bool:
    return len(value) <= 254 and EMAIL.match(value) is not None
