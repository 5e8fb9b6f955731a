"""A real DNS server on a loopback UDP port (dnslib), serving the TXT records a test sets.

    with DnsServer() as dns:
        dns.txt["_linkedge-challenge.go.example.com"] = ["linkedge-verify-..."]
        ... DNS_RESOLVER=dns.address ...

Names it holds nothing for answer NXDOMAIN; ``servfail = True`` makes every answer SERVFAIL (a broken
upstream, as a resolver sees it).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from tests.support import free_port


class _Zone(BaseResolver):  # type: ignore[misc]
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        self.server.queries.append(str(request.q.qname))
        if self.server.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        name = str(request.q.qname).rstrip(".").lower()
        values = self.server.txt.get(name)
        if values is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for value in values:
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(value), ttl=0))
        return reply


class DnsServer:
    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
        self.servfail = False
        self.queries: list[str] = []
        self.port = free_port()
        self._server = DNSServer(
            _Zone(self), address="127.0.0.1", port=self.port, logger=DNSLogger(log="-request,-reply,-truncated")
        )

    @property
    def address(self) -> str:
        """The value for ``DNS_RESOLVER``."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> DnsServer:
        self._server.start_thread()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.stop()
        self._server.server.server_close()
