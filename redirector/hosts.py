"""Hostnames as linkedge compares them: lower-case ASCII (IDN as punycode), no port, no trailing dot.

The API stores a domain's hostname through :func:`parse_hostname` and the edge turns each request's
``Host`` header into the same form with :func:`canonical_host`, so ``GO.Acme.com:443``,
``go.acme.com.`` and ``bücher.example`` / ``xn--bcher-kva.example`` each find one domain.
"""

from __future__ import annotations

import ipaddress
import re

import idna

# A DNS name holds 253 characters; a domain's leaves room for its ``_linkedge-challenge.`` label.
MAX_HOSTNAME = 253 - len("_linkedge-challenge.")
# The ASCII form parse_hostname admits (letters, digits, hyphens; two labels at least; a top-level
# label that starts with a letter), for the OpenAPI document. A Unicode name is accepted too.
HOSTNAME_PATTERN = (
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
)
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_NOT_A_HOST = re.compile(r"[/?#@\\\s]|://")


def canonical_host(header: bytes) -> str:
    """A ``Host`` header value as a hostname: lower-cased, port and trailing dot gone, IDN as punycode.

    ASCII headers (every browser sends punycode) cost a few byte operations; only a Unicode one
    pays for IDNA. An unusable value is ``""``, which names no domain.
    """
    if header.startswith(b"["):  # an IPv6 literal, [::1]:8080
        end = header.find(b"]")
        return header[: end + 1].decode("latin-1").lower() if end > 0 else ""
    host = header.partition(b":")[0].rstrip(b".").lower()
    if host.isascii():
        return host.decode()
    try:
        return idna.encode(host.decode("utf-8"), uts46=True).decode()
    except (UnicodeError, idna.IDNAError):
        return ""


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def parse_hostname(value: str) -> str:
    """The stored form of a hostname a team adds, or :class:`ValueError` saying what to fix."""
    name = value.strip()
    if not name:
        raise ValueError("must not be empty")
    if _NOT_A_HOST.search(name):
        raise ValueError("must be a bare hostname such as go.example.com, without scheme, path or spaces")
    if name.startswith("[") or is_ip_literal(name):
        raise ValueError("must be a hostname, not an IP address")
    if ":" in name:
        raise ValueError("must not carry a port: the edge serves every port of a domain")
    name = name.removesuffix(".")
    if len(name) > MAX_HOSTNAME:
        raise ValueError(f"must be at most {MAX_HOSTNAME} characters (its TXT challenge name must fit in DNS)")
    if name.isascii():
        ascii_name = name.lower()  # as the edge reads an ASCII Host header: no IDNA round trip
    else:
        try:
            ascii_name = idna.encode(name, uts46=True).decode()
        except (UnicodeError, idna.IDNAError) as e:
            raise ValueError(f"is not a valid hostname ({e})") from None
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise ValueError("must have at least two labels, such as go.example.com")
    if len(ascii_name) > MAX_HOSTNAME:
        raise ValueError(f"must be at most {MAX_HOSTNAME} characters as punycode")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError("must consist of letters, digits and hyphens between dots (no label may start or end with -)")
    if labels[-1].isdigit():
        raise ValueError("must end in a top-level domain, not a number")
    return ascii_name
