"""Visitor country and client IP: a trusted edge header first, else a local GeoIP database.

The database is any MaxMind-format (mmdb) country database read with ``maxminddb``: the CC0
``geo-whois-asn-country`` one (records ``{"country_code": "US"}``) or a GeoLite2/DB-IP style one
(``{"country": {"iso_code": "US"}}``). A missing or unreadable file only means "country unknown";
no network is used at run time.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import maxminddb

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class GeoIP:
    """Country lookups by IP; every failure answers ``""``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader: Any = None
        if path and os.path.isfile(path):
            try:
                self._reader = maxminddb.open_database(path)  # the C extension when available
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
                log.warning("GeoIP database %s unreadable (%s); countries will be unknown", path, e)
        elif path:
            log.warning("GeoIP database %s not found; countries will be unknown", path)
        self.country = lru_cache(maxsize=65536)(self._lookup)

    @property
    def available(self) -> bool:
        return self._reader is not None

    def _lookup(self, ip: str) -> str:
        if self._reader is None or not ip:
            return ""
        try:
            record = self._reader.get(ip)
        except (ValueError, TypeError):
            return ""
        if not isinstance(record, dict):
            return ""
        code = record.get("country_code")
        if code is None:
            country = record.get("country")
            code = country.get("iso_code") if isinstance(country, dict) else None
        return code.upper() if isinstance(code, str) and len(code) == 2 else ""

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def clean_country(value: str) -> str:
    """A trusted header's country as ISO alpha-2, or ``""`` (Cloudflare's ``XX``/``T1`` are unknown)."""
    value = value.strip().upper()
    if len(value) == 2 and value.isascii() and value.isalpha() and value != "XX":
        return value
    return ""


def create_trust(trusted: Sequence[IPNetwork]) -> Callable[[str], bool]:
    """Build ``is_trusted(address) -> bool``: the address is one of the configured proxies."""
    if not trusted:
        return lambda address: False

    @lru_cache(maxsize=4096)
    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    return is_trusted


def create_client_ip(trusted: Sequence[IPNetwork]) -> Callable[[str, str], str]:
    """Build ``client_ip(peer, forwarded_for) -> str`` for the configured trusted proxies.

    Behind trusted proxies the client is the right-most X-Forwarded-For address that is not
    itself a trusted proxy (left-most entries are whatever the client chose to send).
    """
    if not trusted:

        def direct(peer: str, forwarded_for: str) -> str:
            return peer

        return direct
    is_trusted = create_trust(trusted)

    def client_ip(peer: str, forwarded_for: str) -> str:
        if not forwarded_for or not is_trusted(peer):
            return peer
        for hop in reversed(forwarded_for.split(",")):
            hop = hop.strip()
            if hop and not is_trusted(hop):
                try:
                    ipaddress.ip_address(hop)
                except ValueError:
                    return peer
                return hop
        return peer

    return client_ip
