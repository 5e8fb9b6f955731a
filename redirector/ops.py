"""The edge's metrics listener: ``GET /metrics`` on a port of its own, never on the public one.

It also answers ``GET /tls/ask?domain=<host>`` for a TLS terminator that issues certificates on
demand (Caddy's ``on_demand_tls { ask ... }``): 200 for the service's own hosts and verified team
domains, 404 for anything else (so nobody can make it request certificates for arbitrary names),
503 while Redis cannot say.

Each edge process serves its own counters, so each needs its own address: ``EDGE_METRICS_PORT``
plus the process's index under :mod:`redirector.serve` (``LINKEDGE_PROCESS_INDEX``: 0, 1, ...).
Prometheus scrapes every process directly; the public port answers ``/metrics`` as it answers
any unknown short code.

The listener runs on the process's event loop (so a wedged loop stops it too) and speaks just
enough HTTP/1.1 for a scraper: one request per connection, a bounded request head, a reply
with ``Content-Length`` and ``Connection: close``. A port that cannot be bound is logged, not
fatal: the redirects matter more than their counters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

log = logging.getLogger(__name__)

HEAD_LIMIT = 16 * 1024  # bytes of request line and headers
READ_TIMEOUT = 5.0
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class MetricsListener:
    """Serves ``render()`` at ``/metrics`` once :meth:`start` has bound the port."""

    def __init__(self, render: Callable[[], bytes], ask: Callable[[str], Awaitable[bool]] | None = None) -> None:
        self.render = render
        self.ask = ask  # may a certificate be issued for this hostname? (None: /tls/ask is a 404)
        self.port = 0  # the bound port (the one asked for, or the kernel's choice for 0)
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, host, port, limit=HEAD_LIMIT, reuse_address=True)
        except OSError as e:
            log.warning("edge metrics not served on %s:%d: %s", host, port, e)
            return
        if port:
            self.port = port
            return
        sockets = self._server.sockets  # port 0: the kernel's choice (uvloop may hand back None here)
        name = sockets[0].getsockname() if sockets and sockets[0] is not None else None
        self.port = int(name[1]) if name else 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            request_line = head.split(b"\r\n", 1)[0]
            parts = request_line.split(b" ")
            if self.ask is not None and len(parts) == 3 and parts[1].split(b"?", 1)[0] == b"/tls/ask":
                writer.write(await self._ask(parts[0], parts[1]))
            else:
                writer.write(self._answer(request_line))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass  # a client that went away or never finished its request gets nothing
        finally:
            writer.close()

    def _answer(self, request_line: bytes) -> bytes:
        parts = request_line.split(b" ")
        method, target = (parts[0], parts[1]) if len(parts) == 3 else (b"", b"")
        extra = b""
        if target.split(b"?", 1)[0] != b"/metrics":
            status, content_type, body = b"404 Not Found", b"text/plain; charset=utf-8", b"Not found\n"
        elif method not in (b"GET", b"HEAD"):
            status, content_type, body = b"405 Method Not Allowed", b"text/plain; charset=utf-8", b""
            extra = b"Allow: GET, HEAD\r\n"
        else:
            status, content_type, body = b"200 OK", CONTENT_TYPE, self.render()
        head = b"".join(
            [
                b"HTTP/1.1 %s\r\n" % status,
                b"Content-Type: %s\r\n" % content_type,
                extra,
                b"Content-Length: %d\r\n" % len(body),
                b"Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            ]
        )
        return head if method == b"HEAD" else head + body

    async def _ask(self, method: bytes, target: bytes) -> bytes:
        assert self.ask is not None
        if method not in (b"GET", b"HEAD"):
            return _reply(b"405 Method Not Allowed", b"", b"Allow: GET, HEAD\r\n")
        query = parse_qs(target.partition(b"?")[2].decode("latin-1"))
        names = query.get("domain", [])
        if len(names) != 1 or not names[0]:
            return _reply(b"400 Bad Request", b"ask with ?domain=<hostname>\n")
        try:
            allowed = await self.ask(names[0])
        except Exception as e:  # Redis down, say: the terminator retries later
            log.warning("TLS ask for %r could not be answered: %s", names[0][:100], e)
            return _reply(b"503 Service Unavailable", b"unavailable\n")
        return _reply(b"200 OK", b"ok\n") if allowed else _reply(b"404 Not Found", b"not a domain of this service\n")

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


def _reply(status: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return b"".join(
        [
            b"HTTP/1.1 %s\r\n" % status,
            b"Content-Type: text/plain; charset=utf-8\r\n",
            extra,
            b"Content-Length: %d\r\n" % len(body),
            b"Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            body,
        ]
    )
