"""Bio pages served by the edge: HTML, ETag/304, CSP, block clicks, form posts, events."""

from __future__ import annotations

import ipaddress
import json

from redirector.events import BLOCK_CLICK, CLICK, FORM, VIEW
from redirector.keys import page_key
from tests.redirector.edge_support import (
    BROWSER,
    GOOGLEBOT,
    IPHONE,
    delete_key,
    edge_client,
    put_link,
    put_page,
    read_events,
    redis_client,
    settings_for,
    wait_until,
)

HTML = b'<!doctype html><html><head><title>Acme</title></head><body class="x"><h1>Acme</h1></body></html>'


def test_page_served_with_headers_and_counted(env, key_prefix):
    r = redis_client(env)
    page = put_page(r, key_prefix, "acme", HTML, etag="abc123", team_id="team-7")
    with edge_client(settings_for(env)) as client:
        response = client.get("/@acme", headers=BROWSER)
    assert response.status_code == 200
    assert response.content == HTML
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["etag"] == '"abc123"'
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    csp = response.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "img-src https: data:",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-src https://www.youtube-nocookie.com https://player.vimeo.com https://open.spotify.com "
        "https://w.soundcloud.com",
    ):
        assert directive in csp
    assert "script-src" not in csp  # scripts fall under default-src 'none'
    [event] = read_events(r, key_prefix)
    assert (event.kind, event.page_id, event.team_id, event.link_id) == (VIEW, page.id, "team-7", "")
    assert event.device == "desktop" and event.bot is False


def test_etag_304_and_handles_are_case_insensitive(env, key_prefix):
    r = redis_client(env)
    put_page(r, key_prefix, "acme", HTML, etag="v2")
    with edge_client(settings_for(env)) as client:
        assert client.get("/@ACME").status_code == 200
        not_modified = client.get("/@acme", headers={"if-none-match": '"v2"'})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["etag"] == '"v2"'
        assert client.get("/@acme", headers={"if-none-match": 'W/"v1", W/"v2"'}).status_code == 304
        assert client.get("/@acme", headers={"if-none-match": '"v1"'}).status_code == 200
        assert client.head("/@acme").status_code == 200
    assert [e.kind for e in read_events(r, key_prefix)] == [VIEW] * 4  # the HEAD is not a view


def test_bio_host_serves_handles_not_codes(env, key_prefix):
    r = redis_client(env)
    put_page(r, key_prefix, "acme", HTML)
    put_link(r, key_prefix, "acme", "https://example.com/code")
    with edge_client(settings_for(env)) as client:
        on_bio = client.get("/acme", headers={"host": "bio.test"})
        assert on_bio.status_code == 200 and on_bio.content == HTML
        assert client.get("/acme", headers={"host": "bio.test:8080"}).status_code == 200
        assert client.get("/missing", headers={"host": "bio.test"}).status_code == 404
        short = client.get("/acme", headers={"host": "sho.rt"})
        assert short.status_code == 302 and short.headers["location"] == "https://example.com/code"
        assert client.get("/@acme", headers={"host": "sho.rt"}).status_code == 200


def test_unknown_and_deleted_pages_are_404(env, key_prefix):
    r = redis_client(env)
    put_page(r, key_prefix, "gone", HTML)
    with edge_client(settings_for(env)) as client:
        assert client.get("/@nobody").status_code == 404
        assert client.get("/@gone").status_code == 200
        delete_key(r, key_prefix, page_key(key_prefix, "gone"))
        # The invalidation reaches the edge's subscriber asynchronously: within a second.
        assert wait_until(lambda: client.get("/@gone").status_code == 404, timeout=1.0)
        page = client.get("/@gone")
        assert page.status_code == 404 and "Page not found" in page.text


def test_block_through_short_link_counts_a_click(env, key_prefix):
    r = redis_client(env)
    rules = [{"url": "https://example.com/ios", "conditions": {"device": ["ios"]}}]
    link = put_link(r, key_prefix, "promo", "https://example.com/promo", rules=rules, team_id="team-7")
    page = put_page(r, key_prefix, "acme", HTML, block_links={"b1": "promo"}, team_id="team-7")
    with edge_client(settings_for(env)) as client:
        desktop = client.get("/@acme/b/b1", headers=BROWSER)
        assert desktop.status_code == 302 and desktop.headers["location"] == "https://example.com/promo"
        phone = client.get("/@acme/b/b1", headers={"user-agent": IPHONE})
        assert phone.headers["location"] == "https://example.com/ios"
    events = read_events(r, key_prefix)
    assert [e.kind for e in events] == [CLICK, CLICK]
    for event in events:
        assert (event.link_id, event.page_id, event.block_id, event.source) == (link.id, page.id, "b1", "bio")


def test_block_straight_to_url_and_unknown_block(env, key_prefix):
    r = redis_client(env)
    page = put_page(r, key_prefix, "acme", HTML, blocks={"b2": "https://shop.example/"})
    with edge_client(settings_for(env)) as client:
        response = client.get("/@acme/b/b2", headers=BROWSER)
        assert response.status_code == 302 and response.headers["location"] == "https://shop.example/"
        assert client.get("/@acme/b/nope").status_code == 404
        assert client.get("/@nobody/b/b2").status_code == 404
        assert client.get("/acme/b/b2", headers={"host": "bio.test"}).status_code == 302
        assert client.get("/acme/b/b2", headers={"host": "sho.rt"}).status_code == 404
    [event, _] = read_events(r, key_prefix)
    assert (event.kind, event.page_id, event.block_id, event.link_id, event.source) == (
        BLOCK_CLICK,
        page.id,
        "b2",
        "",
        "bio",
    )


def test_block_click_by_bot_is_flagged(env, key_prefix):
    r = redis_client(env)
    put_page(r, key_prefix, "acme", HTML, blocks={"b2": "https://shop.example/"})
    with edge_client(settings_for(env)) as client:
        client.get("/@acme/b/b2", headers={"user-agent": GOOGLEBOT})
    [event] = read_events(r, key_prefix)
    assert event.bot is True


FORM_HEADERS = {**BROWSER, "content-type": "application/x-www-form-urlencoded"}


def test_form_post_emits_form_event_and_redirects_back(env, key_prefix):
    r = redis_client(env)
    page = put_page(r, key_prefix, "acme", HTML, forms=("f1",))
    with edge_client(settings_for(env)) as client:
        response = client.post(
            "/@acme/f/f1", content="email=ada%40example.com&name=Ada+L%09&message=hi%0Athere", headers=FORM_HEADERS
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/@acme?submitted=1"
        thanks = client.get("/@acme?submitted=1")
        assert thanks.status_code == 200 and b"Thanks!" in thanks.content and "etag" not in thanks.headers
        assert thanks.content.index(b"Thanks!") > thanks.content.index(b'<body class="x">')
        on_bio = client.post(
            "/acme/f/f1", content="email=b%40example.org", headers={**FORM_HEADERS, "host": "bio.test"}
        )
        assert on_bio.headers["location"] == "/acme?submitted=1"
    form = [e for e in read_events(r, key_prefix) if e.kind == FORM]
    assert [e.page_id for e in form] == [page.id, page.id] and form[0].block_id == "f1"
    assert json.loads(form[0].extra) == {"email": "ada@example.com", "name": "Ada L", "message": "hi\nthere"}
    assert json.loads(form[1].extra) == {"email": "b@example.org"}


def test_form_validation(env, key_prefix):
    r = redis_client(env)
    put_page(r, key_prefix, "acme", HTML, forms=("f1",), blocks={"b1": "https://x.example/"})
    with edge_client(settings_for(env)) as client:
        bad = client.post("/@acme/f/f1", content="email=not-an-email", headers=FORM_HEADERS)
        assert bad.status_code == 422 and "valid email" in bad.text
        missing = client.post("/@acme/f/f1", content="name=x", headers={**FORM_HEADERS, "accept": "application/json"})
        assert missing.status_code == 422 and missing.json()["error"]["code"] == "validation_failed"
        long = client.post("/@acme/f/f1", content="email=a%40b.co&message=" + "x" * 2001, headers=FORM_HEADERS)
        assert long.status_code == 422
        huge = client.post("/@acme/f/f1", content="email=a%40b.co&message=" + "x" * 9000, headers=FORM_HEADERS)
        assert huge.status_code == 413
        many = client.post("/@acme/f/f1", content="&".join(f"f{i}=x" for i in range(60)), headers=FORM_HEADERS)
        assert many.status_code == 413
        as_json = client.post("/@acme/f/f1", json={"email": "a@b.co"}, headers=BROWSER)
        assert as_json.status_code == 415
        assert client.post("/@acme/f/b1", content="email=a%40b.co", headers=FORM_HEADERS).status_code == 404
        assert client.post("/@nobody/f/f1", content="email=a%40b.co", headers=FORM_HEADERS).status_code == 404
        ok = client.post(
            "/@acme/f/f1", content="email=a%40b.co", headers={**FORM_HEADERS, "accept": "application/json"}
        )
        assert ok.status_code == 201 and ok.json() == {"data": {"submitted": True}}
    assert [e.kind for e in read_events(r, key_prefix)] == [FORM]


def test_form_rate_limited_per_address_whatever_the_user_agent(env, key_prefix):
    r = redis_client(env)
    put_page(r, key_prefix, "acme", HTML, forms=("f1",))
    proxy = {"trusted_proxies": (ipaddress.ip_network("127.0.0.1/32"),)}
    with edge_client(settings_for(env, **proxy), client=("127.0.0.1", 40000)) as client:

        def post(i: int, ip: str, agent: str) -> int:
            headers = {**FORM_HEADERS, "user-agent": agent, "x-forwarded-for": ip}
            return client.post("/@acme/f/f1", content=f"email=u{i}%40example.com", headers=headers).status_code

        # A new User-Agent per post (as a script would rotate it) does not buy a new budget.
        statuses = [post(i, "203.0.113.7", f"{IPHONE} r{i}") for i in range(6)]
        other = post(99, "198.51.100.9", IPHONE)
    assert statuses == [303] * 5 + [429]
    assert other == 303  # another address has its own budget
    assert len(read_events(r, key_prefix)) == 6
