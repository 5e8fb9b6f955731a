"""Proving domain ownership: the TXT record ``_linkedge-challenge.<hostname>`` must hold the token.

Lookups go through dnspython's async resolver, built once in the lifespan from ``DNS_RESOLVER``
(``host`` or ``host:port``; IPv6 as ``[addr]:port``), or from the system's configuration when that
is empty.
"""

from __future__ import annotations

import ipaddress

import dns.asyncresolver
import dns.exception
import dns.resolver

CHALLENGE_LABEL = "_linkedge-challenge"
TIMEOUT = 3.0  # seconds for the whole lookup, retries included


class DnsUnavailable(Exception):
    """The resolver did not answer (timeout, refused, SERVFAIL): nothing is known about the record."""


def challenge_name(hostname: str) -> str:
    return f"{CHALLENGE_LABEL}.{hostname}"


def parse_resolver(spec: str) -> tuple[str, int]:
    """``DNS_RESOLVER`` as ``(address, port)``; :class:`ValueError` names what is wrong."""
    text = spec.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"DNS_RESOLVER must be an IP address with an optional port, got {spec!r}") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"DNS_RESOLVER has an invalid port in {spec!r}")
    return host, int(port)


def create_resolver(spec: str, timeout: float = TIMEOUT) -> dns.asyncresolver.Resolver:
    """A resolver for ``spec`` (see :func:`parse_resolver`), or the system's when it is empty."""
    if spec.strip():
        host, port = parse_resolver(spec)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        try:
            resolver = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
    resolver.lifetime = timeout
    resolver.timeout = timeout / 2
    return resolver


async def txt_values(resolver: dns.asyncresolver.Resolver, name: str) -> list[str]:
    """Every TXT value at ``name`` (chunks of one record joined); ``[]`` when it has none."""
    try:
        answer = await resolver.resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers, OSError) as e:
        raise DnsUnavailable(str(e) or type(e).__name__) from e
    except dns.exception.DNSException as e:
        raise DnsUnavailable(str(e) or type(e).__name__) from e
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
