"""Password guesses are throttled per client address and per link, whatever the User-Agent."""

from __future__ import annotations

import ipaddress

import pytest

from redirector import links
from redirector.passwords import hash_password
from tests.redirector.edge_support import WINDOWS, edge_client, put_link, redis_client, settings_for

PROXY = {"trusted_proxies": (ipaddress.ip_network("127.0.0.1/32"),)}


def guess(client, password: str, ip: str, agent: str) -> int:
    headers = {"user-agent": agent, "x-forwarded-for": ip}
    return client.post("/locked", data={"password": password}, headers=headers).status_code


def test_rotating_the_user_agent_does_not_reset_the_password_limit(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "locked", "https://example.com/vault", password_hash=hash_password("right", 1000))
    with edge_client(settings_for(env, **PROXY), client=("127.0.0.1", 40000)) as client:
        wrong = [guess(client, "wrong", "203.0.113.7", f"{WINDOWS} r{i}") for i in range(links.PASSWORD_ATTEMPTS)]
        right = guess(client, "right", "203.0.113.7", f"{WINDOWS} fresh")
        elsewhere = guess(client, "right", "198.51.100.9", WINDOWS)
    assert wrong == [401] * links.PASSWORD_ATTEMPTS
    assert right == 429  # even the right password waits out the minute from that address
    assert elsewhere == 303  # another address has its own budget


def test_a_ceiling_per_link_bounds_guesses_from_many_addresses(env, key_prefix, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(links, "PASSWORD_CEILING", 12)
    r = redis_client(env)
    put_link(r, key_prefix, "locked", "https://example.com/vault", password_hash=hash_password("right", 1000))
    with edge_client(settings_for(env, **PROXY), client=("127.0.0.1", 40000)) as client:
        statuses = [guess(client, "wrong", f"203.0.113.{i}", WINDOWS) for i in range(20)]
    assert statuses == [401] * 12 + [429] * 8
