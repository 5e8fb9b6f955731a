"""Fixtures of the domain tests: a real DNS server on a loopback port, and the API's settings
pointing ``DNS_RESOLVER`` at it. A module uses them with ``from tests.api.domain_fixtures import
dns, settings`` (the ``settings`` here overrides the conftest's for that module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.settings import Settings
from tests.dns_server import DnsServer


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def settings(env: dict[str, str], dns: DnsServer) -> Settings:
    return Settings.from_env({**env, "DNS_RESOLVER": dns.address})
