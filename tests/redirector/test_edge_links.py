"""The edge's short-link behaviour through HTTP, against the real Redis."""

from __future__ import annotations

import ipaddress
import time

import pytest

from redirector.events import CLICK
from redirector.keys import clicks_key
from redirector.passwords import hash_password
from tests.redirector.edge_support import (
    BROWSER,
    CURL,
    GOOGLEBOT,
    IPHONE,
    SLACKBOT,
    WINDOWS,
    edge_client,
    put_link,
    read_events,
    redis_client,
    settings_for,
)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_status_and_cache_control(env, key_prefix, status):
    r = redis_client(env)
    put_link(r, key_prefix, "go", "https://example.com/landing", status=status)
    with edge_client(settings_for(env)) as client:
        response = client.get("/go", headers=BROWSER)
    assert response.status_code == status
    assert response.headers["location"] == "https://example.com/landing"
    assert response.headers["cache-control"] == "private, max-age=0"


def test_unknown_and_disabled_are_404_html_or_json(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "off", enabled=False)
    with edge_client(settings_for(env)) as client:
        for code in ("nope", "off"):
            page = client.get(f"/{code}", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
            assert page.status_code == 404
            assert page.headers["content-type"].startswith("text/html")
            assert "Link not found" in page.text
            api = client.get(f"/{code}", headers={"accept": "application/json"})
            assert api.status_code == 404
            assert api.json() == {
                "error": {"code": "not_found", "message": "This link does not exist or has been disabled."}
            }


def test_codes_are_case_sensitive(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "AbC", "https://example.com/upper")
    with edge_client(settings_for(env)) as client:
        assert client.get("/AbC").status_code == 302
        assert client.get("/abc").status_code == 404


def test_expired_is_410(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "old", expires_at=time.time() - 5)
    put_link(r, key_prefix, "fresh", expires_at=time.time() + 3600)
    with edge_client(settings_for(env)) as client:
        gone = client.get("/old", headers={"accept": "application/json"})
        assert gone.status_code == 410
        assert gone.json()["error"]["code"] == "gone"
        html = client.get("/old")
        assert html.status_code == 410 and "expired" in html.text
        assert client.get("/fresh").status_code == 302


def test_max_clicks_then_410_and_head_does_not_count(env, key_prefix):
    r = redis_client(env)
    record = put_link(r, key_prefix, "few", max_clicks=2)
    with edge_client(settings_for(env)) as client:
        head = client.head("/few", headers=BROWSER)
        assert head.status_code == 200 and "location" not in head.headers  # uncounted: no destination
        assert client.get("/few", headers=BROWSER).status_code == 302
        assert client.get("/few", headers=BROWSER).status_code == 302
        assert client.get("/few", headers=BROWSER).status_code == 410
        assert client.head("/few", headers=BROWSER).status_code == 410
    assert int(r.get(clicks_key(key_prefix, record.id)) or 0) == 3


def test_a_capped_link_gives_its_destination_only_to_counted_clicks(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "once", "https://example.com/secret-offer", max_clicks=1)
    uncounted = [
        ("HEAD", BROWSER),
        ("GET", {**BROWSER, "sec-purpose": "prefetch"}),
        ("GET", {"user-agent": GOOGLEBOT}),
        ("GET", {"user-agent": CURL}),
    ]
    with edge_client(settings_for(env)) as client:
        for _ in range(3):
            for method, headers in uncounted:
                response = client.request(method, "/once", headers=headers)
                assert response.status_code == 200 and "location" not in response.headers, (method, headers)
                assert "secret-offer" not in response.text
        first = client.get("/once", headers=BROWSER)
        assert first.status_code == 302 and first.headers["location"] == "https://example.com/secret-offer"
        assert client.get("/once", headers=BROWSER).status_code == 410
        for method, headers in uncounted:
            assert client.request(method, "/once", headers=headers).status_code == 410


def test_head_redirects_without_counting(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "head", "https://example.com/h")
    with edge_client(settings_for(env)) as client:
        response = client.head("/head", headers=BROWSER)
        assert response.status_code == 302
        assert response.headers["location"] == "https://example.com/h"
        assert response.content == b""
    assert read_events(r, key_prefix) == []


def test_click_event_fields(env, key_prefix):
    r = redis_client(env)
    record = put_link(r, key_prefix, "ev", team_id="team-9")
    proxy = (ipaddress.ip_network("10.0.0.1/32"),)  # the country header comes from a trusted proxy
    settings = settings_for(env, country_header="cf-ipcountry", trusted_proxies=proxy)
    before = int(time.time() * 1000)
    with edge_client(settings, client=("10.0.0.1", 1)) as client:
        headers = {"user-agent": IPHONE, "cf-ipcountry": "ca", "referer": "https://www.news.example.org/a?b=c"}
        assert client.get("/ev", headers=headers).status_code == 302
        assert client.get("/ev?qr=1", headers={"user-agent": WINDOWS}).status_code == 302
    first, second = read_events(r, key_prefix)
    assert first.kind == CLICK and first.team_id == "team-9" and first.link_id == record.id
    assert first.page_id == "" and first.block_id == ""
    assert before <= first.ts_ms <= int(time.time() * 1000)
    assert (first.country, first.device, first.os, first.browser) == ("CA", "mobile", "ios", "safari")
    assert first.referrer == "news.example.org"
    assert len(first.visitor) == 16 and int(first.visitor, 16) >= 0
    assert first.bot is False and first.source == "direct"
    assert (second.device, second.os, second.browser, second.source) == ("desktop", "windows", "edge", "qr")
    assert second.country == "" and second.referrer == ""
    assert second.visitor != first.visitor  # another User-Agent is another visitor


def test_same_visitor_same_hash(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "v")
    with edge_client(settings_for(env)) as client:
        client.get("/v", headers=BROWSER)
        client.get("/v", headers=BROWSER)
    a, b = read_events(r, key_prefix)
    assert a.visitor == b.visitor


@pytest.mark.parametrize("ua", [GOOGLEBOT, SLACKBOT, CURL, "facebookexternalhit/1.1", ""])
def test_bots_redirected_and_flagged(env, key_prefix, ua):
    r = redis_client(env)
    put_link(r, key_prefix, "b", "https://example.com/bot")
    with edge_client(settings_for(env)) as client:
        response = client.get("/b", headers={"user-agent": ua})
        assert response.status_code == 302 and response.headers["location"] == "https://example.com/bot"
    [event] = read_events(r, key_prefix)
    assert event.bot is True


@pytest.mark.parametrize("header", [("sec-purpose", "prefetch;prerender"), ("purpose", "prefetch")])
def test_prefetch_redirected_not_emitted(env, key_prefix, header):
    r = redis_client(env)
    put_link(r, key_prefix, "pf")
    with edge_client(settings_for(env)) as client:
        assert client.get("/pf", headers={**BROWSER, header[0]: header[1]}).status_code == 302
    assert read_events(r, key_prefix) == []


@pytest.mark.parametrize(
    ("dest", "query", "expected"),
    [
        ("https://example.com/p", "a=1&b=2", "https://example.com/p?a=1&b=2"),
        ("https://example.com/p?x=1", "a=1", "https://example.com/p?x=1&a=1"),
        ("https://example.com/p?a=0&x=1#frag", "a=9", "https://example.com/p?x=1&a=9#frag"),
        ("https://example.com/p?utm_source=x", "qr=1", "https://example.com/p?utm_source=x"),
        ("https://example.com/p", "q=hello%20world&qr=1", "https://example.com/p?q=hello+world"),
    ],
)
def test_forward_query(env, key_prefix, dest, query, expected):
    r = redis_client(env)
    put_link(r, key_prefix, "fq", dest, forward_query=True)
    put_link(r, key_prefix, "nofq", dest)
    with edge_client(settings_for(env)) as client:
        assert client.get(f"/fq?{query}").headers["location"] == expected
        assert client.get(f"/nofq?{query}").headers["location"] == dest


def test_password_form_and_post(env, key_prefix):
    r = redis_client(env)
    record = put_link(r, key_prefix, "secret", "https://example.com/vault", password_hash=hash_password("s3cret", 1000))
    with edge_client(settings_for(env)) as client:
        form = client.get("/secret", headers=BROWSER)
        assert form.status_code == 200
        assert '<form method="post" action="/secret">' in form.text and 'name="password"' in form.text
        assert "content-security-policy" in form.headers
        wrong = client.post("/secret", data={"password": "nope"}, headers=BROWSER)
        assert wrong.status_code == 401
        assert "Wrong password" in wrong.text and 'name="password"' in wrong.text
        right = client.post("/secret", data={"password": "s3cret"}, headers=BROWSER)
        assert right.status_code == 303
        assert right.headers["location"] == "https://example.com/vault"
    [event] = read_events(r, key_prefix)  # only the successful POST counts
    assert event.kind == CLICK and event.link_id == record.id


def test_password_attempts_are_rate_limited(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "locked", password_hash=hash_password("right", 1000))
    with edge_client(settings_for(env)) as client:
        statuses = [client.post("/locked", data={"password": "wrong"}).status_code for _ in range(11)]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429


def test_reserved_paths_are_not_codes(env, key_prefix):
    r = redis_client(env)
    for code in ("healthz", "readyz", "robots.txt"):
        put_link(r, key_prefix, code, "https://example.com/hijack")
    with edge_client(settings_for(env)) as client:
        assert client.get("/healthz").text == "ok"
        assert client.get("/readyz").json() == {"status": "ready"}
        assert client.get("/robots.txt").text == "User-agent: *\nDisallow:\n"
        assert client.get("/favicon.ico").status_code == 404
        assert client.get("/").status_code == 404
        assert client.get("/a/b/c", headers={"accept": "application/json"}).json()["error"]["code"] == "not_found"


def test_non_ascii_destination_is_percent_encoded(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "uni", "https://example.com/café?q=ü")
    with edge_client(settings_for(env)) as client:
        assert client.get("/uni").headers["location"] == "https://example.com/caf%C3%A9?q=%C3%BC"


@pytest.mark.parametrize("char", ["\x0b", "\x01", "\x0c", "\x1b", "\x7f", "\n"])
def test_a_record_with_a_control_character_still_gets_a_clean_redirect(env, key_prefix, char):
    r = redis_client(env)
    put_link(r, key_prefix, "ctl", f"https://example.com/a{char}b")  # written past the API's checks
    with edge_client(settings_for(env)) as client:
        response = client.get("/ctl", headers=BROWSER)
    assert response.status_code == 302
    assert response.headers["location"] == f"https://example.com/a%{ord(char):02X}b"
