"""Visitor country, region, city and network, and the client IP.

The country comes from a trusted edge header first, else a local GeoIP database: any
MaxMind-format (mmdb) country database read with ``maxminddb``, the CC0 ``geo-whois-asn-country``
one (records ``{"country_code": "US"}``) or a GeoLite2/DB-IP style one
(``{"country": {"iso_code": "US"}}``).

Region and city come from city databases (``GEOIP_CITY_DB``), the autonomous system from ASN
databases (``GEOIP_ASN_DB``); each setting is a comma-separated list of files, as ip-location-db
ships IPv4 and IPv6 apart. Both record shapes are read: ip-location-db's flat ones
(``{"country_code", "state1", "city"}``, ``{"autonomous_system_number", ...}``) and MaxMind's
GeoLite2 ones (``{"subdivisions": [{"names": ...}], "city": {"names": ...}}``). The network
class is "datacenter" for ASNs of hosting and cloud providers (:data:`DATACENTER_ASNS`, or an
organisation name with one of :data:`DATACENTER_WORDS`), else "other".

A missing or unreadable file only means those fields are empty; no network is used at run time.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import maxminddb

from redirector.events import NETWORK_DATACENTER, NETWORK_OTHER, PLACE_SEP

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NO_PLACE = "\t\t\t"  # the region, city, asn and network columns, all empty
NAME_MAX = 80  # characters of a region or city name
# Hosting and cloud providers' ASNs (AWS, Google Cloud, Azure, DigitalOcean, OVH, Hetzner, Linode,
# Vultr, Oracle, Alibaba, Tencent, Scaleway, Contabo, Leaseweb, M247, Cloudflare, Fastly, Akamai).
DATACENTER_ASNS = frozenset(
    {16509, 14618, 8987, 15169, 396982, 19527, 8075, 8068, 14061, 16276, 24940, 213230, 63949, 20473, 31898}
    | {45102, 37963, 132203, 45090, 12876, 51167, 60781, 28753, 9009, 13335, 209242, 54113, 20940, 16625}
)
DATACENTER_WORDS = ("hosting", "cloud", "datacenter", "data center", "server", "vps", "colocation")
_NAME_CLEAN = str.maketrans({"\t": " ", "\n": " ", "\r": " ", PLACE_SEP: "/"})


def _open(path: str, what: str) -> Any:
    if not path:
        return None
    if not os.path.isfile(path):
        log.warning("GeoIP database %s not found; %s will be unknown", path, what)
        return None
    try:
        return maxminddb.open_database(path)  # the C extension when available
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
        log.warning("GeoIP database %s unreadable (%s); %s will be unknown", path, e, what)
        return None


def _record(readers: Sequence[Any], ip: str) -> dict[str, Any] | None:
    """The first reader's record for ``ip`` (an IPv4-only file refuses IPv6 addresses: the next one)."""
    for reader in readers:
        try:
            record = reader.get(ip)
        except (ValueError, TypeError):
            continue
        if isinstance(record, dict):
            return record
    return None


def _name(value: Any) -> str:
    """A place name of either record shape (a string, or ``{"names": {"en": ...}}``)."""
    if isinstance(value, dict):
        names = value.get("names")
        value = names.get("en") if isinstance(names, dict) else None
    return value.translate(_NAME_CLEAN).strip()[:NAME_MAX] if isinstance(value, str) else ""


def is_datacenter(asn: int, organisation: str) -> bool:
    if asn in DATACENTER_ASNS:
        return True
    name = organisation.lower()
    return any(word in name for word in DATACENTER_WORDS)


class GeoIP:
    """Country, place and network lookups by IP; every failure answers empty fields."""

    def __init__(self, path: str, city_paths: Sequence[str] = (), asn_paths: Sequence[str] = ()) -> None:
        self.path = path
        self._reader: Any = _open(path, "countries")
        self._cities = [r for r in (_open(p, "regions and cities") for p in city_paths) if r is not None]
        self._asns = [r for r in (_open(p, "networks") for p in asn_paths) if r is not None]
        self.country = lru_cache(maxsize=65536)(self._lookup)
        # The event line's region, city, asn and network columns for an address, tab-joined.
        self.place: Callable[[str], str] = (
            lru_cache(maxsize=65536)(self._place) if self._cities or self._asns else _no_place
        )

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

    def _place(self, ip: str) -> str:
        region = city = asn = network = ""
        if ip and self._cities:
            record = _record(self._cities, ip)
            if record is not None:
                country = record.get("country_code")
                if country is None:
                    country = (
                        record.get("country", {}).get("iso_code") if isinstance(record.get("country"), dict) else ""
                    )
                country = country.upper() if isinstance(country, str) and len(country) == 2 else ""
                subdivisions = record.get("subdivisions")
                state = _name(subdivisions[0] if subdivisions else record.get("state1"))
                town = _name(record.get("city"))
                if country and state:
                    region = f"{country}{PLACE_SEP}{state}"
                if country and town:
                    city = f"{country}{PLACE_SEP}{state}{PLACE_SEP}{town}"
        if ip and self._asns:
            record = _record(self._asns, ip)
            number = record.get("autonomous_system_number") if record else None
            if isinstance(number, int) and number > 0:
                organisation = record.get("autonomous_system_organization") if record else None
                asn = str(number)
                network = NETWORK_DATACENTER if is_datacenter(number, str(organisation or "")) else NETWORK_OTHER
        return f"{region}\t{city}\t{asn}\t{network}"

    def close(self) -> None:
        for reader in [self._reader, *self._cities, *self._asns]:
            if reader is not None:
                reader.close()
        self._reader = None
        self._cities, self._asns = [], []


def _no_place(ip: str) -> str:
    return NO_PLACE


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
