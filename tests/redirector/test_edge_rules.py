"""Routing rules evaluated by the edge through HTTP: each condition key, order, splits."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest

from redirector.visitor import split_cookie_name
from tests.redirector.edge_support import (
    ANDROID,
    ANDROID_TABLET,
    CHROMEOS,
    IPAD,
    IPHONE,
    LINUX_FIREFOX,
    MAC,
    WINDOWS,
    edge_client,
    put_link,
    redis_client,
    settings_for,
)

DEFAULT = "https://example.com/default"
HIT = "https://example.com/hit"


def rule(**conditions):
    return [{"url": HIT, "conditions": conditions}]


PROXY = (ipaddress.ip_network("10.0.0.1/32"),)
PROXY_PEER = ("10.0.0.1", 1)
# The country header is believed only from a trusted proxy: these tests send it through one.
TRUSTED_HEADER = {"country_header": "cf-ipcountry", "trusted_proxies": PROXY, "client": PROXY_PEER}


def destination(env, key_prefix, rules, headers=None, path="/r", client=("testclient", 50000), **settings):
    r = redis_client(env)
    put_link(r, key_prefix, "r", DEFAULT, rules=rules)
    with edge_client(settings_for(env, **settings), client=client) as c:
        response = c.get(path, headers=headers or {})
    assert response.status_code == 302
    return response.headers["location"]


@pytest.mark.parametrize(
    ("countries", "header", "expected"),
    [
        (["CA"], "CA", HIT),
        (["ca"], "ca", HIT),
        (["CA", "US"], "US", HIT),
        (["CA"], "FR", DEFAULT),
        (["CA"], None, DEFAULT),
        (["CA"], "XX", DEFAULT),
    ],
)
def test_country_from_trusted_header(env, key_prefix, countries, header, expected):
    headers = {"cf-ipcountry": header} if header else {}
    assert destination(env, key_prefix, rule(country=countries), headers, **TRUSTED_HEADER) == expected


def test_country_header_from_an_untrusted_peer_is_ignored(env, key_prefix):
    headers = {"cf-ipcountry": "CA"}
    untrusted = {**TRUSTED_HEADER, "client": ("198.51.100.4", 1)}
    assert destination(env, key_prefix, rule(country=["CA"]), headers, **untrusted) == DEFAULT


def test_country_header_ignored_when_not_configured(env, key_prefix):
    assert destination(env, key_prefix, rule(country=["CA"]), {"cf-ipcountry": "CA"}) == DEFAULT


@pytest.mark.parametrize(
    ("ua", "matching", "not_matching"),
    [
        (IPHONE, ["ios", "mobile"], ["android", "tablet", "desktop", "macos"]),
        (IPAD, ["ios", "tablet"], ["mobile", "desktop", "android"]),
        (ANDROID, ["android", "mobile"], ["ios", "tablet", "desktop"]),
        (ANDROID_TABLET, ["android", "tablet"], ["mobile", "ios"]),
        (WINDOWS, ["windows", "desktop"], ["macos", "mobile", "linux"]),
        (MAC, ["macos", "desktop"], ["ios", "windows", "mobile"]),
        (LINUX_FIREFOX, ["linux", "desktop"], ["android", "chromeos"]),
        (CHROMEOS, ["chromeos", "desktop"], ["linux", "windows"]),
    ],
)
def test_device_from_user_agent(env, key_prefix, ua, matching, not_matching):
    r = redis_client(env)
    for i, device in enumerate(matching + not_matching):
        put_link(r, key_prefix, f"d{i}", DEFAULT, rules=rule(device=[device]))
    with edge_client(settings_for(env)) as c:
        for i, device in enumerate(matching + not_matching):
            got = c.get(f"/d{i}", headers={"user-agent": ua}).headers["location"]
            assert got == (HIT if device in matching else DEFAULT), device


@pytest.mark.parametrize(
    ("browsers", "ua", "expected"),
    [
        (["safari"], IPHONE, HIT),
        (["edge"], WINDOWS, HIT),
        (["chrome"], WINDOWS, DEFAULT),
        (["firefox"], LINUX_FIREFOX, HIT),
    ],
)
def test_browser(env, key_prefix, browsers, ua, expected):
    assert destination(env, key_prefix, rule(browser=browsers), {"user-agent": ua}) == expected


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        ("fr-CA,fr;q=0.9,en;q=0.8", HIT),
        ("fr", HIT),
        ("en-US,en;q=0.9,fr;q=0.8", DEFAULT),  # below q=0.9 does not count
        ("en-US,fr;q=0.95", HIT),
        ("", DEFAULT),
    ],
)
def test_language_q_values(env, key_prefix, accept_language, expected):
    headers = {"accept-language": accept_language} if accept_language else {}
    assert destination(env, key_prefix, rule(language=["fr"]), headers) == expected


@pytest.mark.parametrize(
    ("query", "path", "expected"),
    [
        ({"utm_source": "*"}, "/r?utm_source=anything", HIT),
        ({"utm_source": "*"}, "/r?utm_source=", HIT),
        ({"utm_source": "*"}, "/r?other=1", DEFAULT),
        ({"campaign": "spring"}, "/r?campaign=spring", HIT),
        ({"campaign": "spring"}, "/r?campaign=fall", DEFAULT),
        ({"campaign": "spring"}, "/r", DEFAULT),
    ],
)
def test_query(env, key_prefix, query, path, expected):
    assert destination(env, key_prefix, rule(query=query), path=path) == expected


def test_ip_from_trusted_forwarded_for(env, key_prefix):
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    rules = rule(ip=["203.0.113.0/24", "2001:db8::1"])
    proxy = ("10.1.2.3", 4000)
    xff = {"x-forwarded-for": "198.51.100.7, 203.0.113.9"}
    assert destination(env, key_prefix, rules, xff, client=proxy, trusted_proxies=trusted) == HIT
    # the client's own claim, left of a non-proxy hop, is not believed
    spoof = {"x-forwarded-for": "203.0.113.9, 198.51.100.7"}
    assert destination(env, key_prefix, rules, spoof, client=proxy, trusted_proxies=trusted) == DEFAULT
    # several trusted hops are skipped from the right
    chain = {"x-forwarded-for": "203.0.113.9, 10.9.9.9"}
    assert destination(env, key_prefix, rules, chain, client=proxy, trusted_proxies=trusted) == HIT
    assert (
        destination(env, key_prefix, rules, {"x-forwarded-for": "2001:db8::1"}, client=proxy, trusted_proxies=trusted)
        == HIT
    )


def test_forwarded_for_ignored_from_untrusted_peer(env, key_prefix):
    rules = rule(ip=["203.0.113.0/24"])
    xff = {"x-forwarded-for": "203.0.113.9"}
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    assert destination(env, key_prefix, rules, xff, client=("192.0.2.1", 1), trusted_proxies=trusted) == DEFAULT
    assert destination(env, key_prefix, rules, xff, client=("192.0.2.1", 1)) == DEFAULT
    assert destination(env, key_prefix, rules, {}, client=("203.0.113.50", 1)) == HIT


@pytest.mark.parametrize(
    ("referer", "expected"),
    [
        ("https://twitter.com/status/1", HIT),
        ("https://www.twitter.com/x", HIT),
        ("https://mobile.twitter.com/x", HIT),
        ("https://nottwitter.com/", DEFAULT),
        (None, DEFAULT),
    ],
)
def test_referrer_host(env, key_prefix, referer, expected):
    headers = {"referer": referer} if referer else {}
    assert destination(env, key_prefix, rule(referrer_host=["twitter.com"]), headers) == expected


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"after": "2000-01-01T00:00:00Z"}, HIT),
        ({"after": "2999-01-01T00:00:00Z"}, DEFAULT),
        ({"before": "2999-01-01T00:00:00Z"}, HIT),
        ({"before": "2000-01-01T00:00:00Z"}, DEFAULT),
        ({"after": "2000-01-01T00:00:00Z", "before": "2999-01-01T00:00:00Z"}, HIT),
    ],
)
def test_time_window(env, key_prefix, window, expected):
    assert destination(env, key_prefix, rule(**window)) == expected


def test_first_matching_rule_wins_and_conditions_and(env, key_prefix):
    rules = [
        {"url": "https://example.com/ca-ios", "conditions": {"country": ["CA"], "device": ["ios"]}},
        {"url": "https://example.com/ca", "conditions": {"country": ["CA"]}},
        {"url": "https://example.com/ios", "conditions": {"device": ["ios"]}},
    ]
    r = redis_client(env)
    put_link(r, key_prefix, "r", DEFAULT, rules=rules)
    cases = [
        ({"cf-ipcountry": "CA", "user-agent": IPHONE}, "https://example.com/ca-ios"),
        ({"cf-ipcountry": "CA", "user-agent": WINDOWS}, "https://example.com/ca"),
        ({"cf-ipcountry": "US", "user-agent": IPHONE}, "https://example.com/ios"),
        ({"cf-ipcountry": "US", "user-agent": WINDOWS}, DEFAULT),
    ]
    with edge_client(settings_for(env, country_header="cf-ipcountry", trusted_proxies=PROXY), client=PROXY_PEER) as c:
        for headers, expected in cases:
            assert c.get("/r", headers=headers).headers["location"] == expected


SPLIT = [{"split": [{"url": "https://a.example/", "weight": 70}, {"url": "https://b.example/", "weight": 30}]}]


def test_split_is_sticky_through_its_cookie(env, key_prefix):
    r = redis_client(env)
    record = put_link(r, key_prefix, "ab", DEFAULT, rules=SPLIT)
    name = split_cookie_name(record.id)
    with edge_client(settings_for(env)) as c:
        first = c.get("/ab", headers={"user-agent": WINDOWS})
        assert first.headers["location"] in ("https://a.example/", "https://b.example/")
        set_cookie = first.headers["set-cookie"]
        assert set_cookie.startswith(f"{name}=") and "Max-Age=" in set_cookie and "HttpOnly" in set_cookie
        bucket = int(set_cookie.split(";")[0].split("=")[1])
        assert 0 <= bucket <= 99
        assert first.headers["location"] == ("https://a.example/" if bucket < 70 else "https://b.example/")
        # The same visitor (the cookie jar keeps the cookie) always lands on the same variant.
        for _ in range(5):
            again = c.get("/ab", headers={"user-agent": WINDOWS})
            assert again.headers["location"] == first.headers["location"]
            assert "set-cookie" not in again.headers
        # The cookie decides, not the visitor hash.
        for bucket, variant in (("10", "https://a.example/"), ("85", "https://b.example/")):
            c.cookies.clear()
            c.cookies.set(name, bucket)
            assert c.get("/ab").headers["location"] == variant


def test_split_spreads_visitors_by_weight(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "ab", DEFAULT, rules=SPLIT)
    seen: Counter[str] = Counter()
    with edge_client(settings_for(env)) as c:
        for i in range(200):
            c.cookies.clear()
            seen[c.get("/ab", headers={"user-agent": f"{WINDOWS} visitor/{i}"}).headers["location"]] += 1
    assert set(seen) == {"https://a.example/", "https://b.example/"}
    assert seen["https://a.example/"] > seen["https://b.example/"]


def test_rules_and_forward_query_combine(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "r", DEFAULT, rules=rule(query={"v": "*"}), forward_query=True)
    with edge_client(settings_for(env)) as c:
        assert c.get("/r?v=2").headers["location"] == f"{HIT}?v=2"
