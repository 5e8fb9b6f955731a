"""Inputs an outside probe used to reach a 500: each is now a 422 naming what to fix, and writes nothing."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

API = "/api/v1"


def nested(depth: int) -> Any:
    """``depth`` objects inside one another: {"a": {"a": ... 1}}."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def error_fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    body = response.json()["error"]
    assert body["code"] == "validation_failed"
    return [d["field"] for d in body["details"]]


def forged(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/bio/pages", {"title": "x", "page_data": {"extra": nested(300)}}, "page_data.extra"),
        ("/bio-pages", {"blocks": [{"type": "text", "config": nested(300)}]}, "blocks[0].config"),
        ("/links", {"url": "https://example.com", "routing_rules": [nested(300)]}, "routing_rules[0]"),
    ],
)
def test_deep_nesting_is_a_422_naming_where_it_got_too_deep(client, make_key, db, path, body, field) -> None:
    r = client.post(API + path, json=body, headers=make_key().headers)
    [named] = error_fields(r)
    assert named.startswith(field) and "nested too deeply" in r.json()["error"]["message"]
    assert db("SELECT (SELECT count(*) FROM bio_pages) + (SELECT count(*) FROM links) AS n")[0]["n"] == 0


def test_nesting_up_to_the_limit_is_stored_and_served(client, make_key) -> None:
    r = client.post(
        API + "/bio/pages", json={"title": "x", "page_data": {"extra": nested(28)}}, headers=make_key().headers
    )
    assert r.status_code == 201, r.text
    assert client.get(f"{API}/bio/pages/{r.json()['data']['id']}", headers=make_key().headers).status_code == 200


@pytest.fixture
def link_and_page(client, make_key) -> tuple[dict[str, str], str, str]:
    key = make_key()
    link = client.post(API + "/links", json={"url": "https://example.com"}, headers=key.headers).json()["data"]
    page = client.post(API + "/bio-pages", json={"handle": "probe"}, headers=key.headers).json()["data"]
    return key.headers, link["id"], page["id"]


@pytest.mark.parametrize(
    "params",
    [
        {"to": "9999-12-31"},
        {"from": "0001-01-01", "tz": "Asia/Tokyo"},
        {"from": "0001-01-01T00:00:00+14:00"},
        {"to": "9999-12-31T23:59:59-12:00"},
    ],
)
def test_stats_windows_at_the_ends_of_time_are_a_422(client, link_and_page, params) -> None:
    headers, link_id, page_id = link_and_page
    for path in (
        f"/links/{link_id}/stats",
        f"/bio-pages/{page_id}/stats/counters",
        f"/bio-pages/{page_id}/stats/views",
    ):
        r = client.get(API + path, params=params, headers=headers)
        assert error_fields(r) == [next(iter(params))], (path, r.text)


@pytest.mark.parametrize(
    "cursor",
    [
        forged(f"0001-01-01T00:00:00+14:00|{uuid.uuid4()}"),
        forged(f"2026-01-01T00:00:00+05:00|{uuid.uuid4()}"),
        forged("2026-01-01T00:00:00+00:00|not-a-uuid"),
        forged("2026-01-01T00:00:00+00:00"),
        "x" * 500,
    ],
)
@pytest.mark.parametrize("path", ["/links", "/bio-pages"])
def test_forged_list_cursors_are_a_422(client, link_and_page, path, cursor) -> None:
    headers, _, _ = link_and_page
    assert error_fields(client.get(API + path, params={"cursor": cursor}, headers=headers)) == ["cursor"]


@pytest.mark.parametrize(
    "cursor",
    [
        forged("2026-01-01T00:00:00+00:00|99999999999999999999"),
        forged("2026-01-01T00:00:00+00:00|-1"),
        forged("0001-01-01T00:00:00+14:00|5"),
    ],
)
def test_forged_submission_cursors_are_a_422(client, link_and_page, cursor) -> None:
    headers, _, page_id = link_and_page
    r = client.get(f"{API}/bio-pages/{page_id}/submissions", params={"cursor": cursor}, headers=headers)
    assert error_fields(r) == ["cursor"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/bio-pages", {"search": "a\x00"}, "search"),
        ("/bio-pages/search", {"q": "a\x00"}, "q"),
        ("/links", {"search": "a\x00"}, "search"),
        ("/links", {"label": "a\x00"}, "label"),
    ],
)
def test_nul_in_a_query_string_is_a_422_naming_the_parameter(client, link_and_page, path, params, field) -> None:
    headers, _, _ = link_and_page
    assert error_fields(client.get(API + path, params=params, headers=headers)) == [field]


def test_a_real_cursor_still_pages(client, make_key) -> None:
    key = make_key()
    for i in range(3):
        client.post(API + "/links", json={"url": f"https://example.com/{i}"}, headers=key.headers)
    first = client.get(API + "/links", params={"per_page": 2}, headers=key.headers).json()
    cursor = first["meta"]["next_cursor"]
    rest = client.get(API + "/links", params={"per_page": 2, "cursor": cursor}, headers=key.headers).json()
    assert len(first["data"]) == 2 and len(rest["data"]) == 1 and rest["meta"]["next_cursor"] is None


CONTROL = ["\x0b", "\x01", "\x0c", "\x1b", "\x7f", "\x00", "\t", " "]


@pytest.mark.parametrize("char", CONTROL)
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/links", lambda u: {"url": u}, "url"),
        ("/links", lambda u: {"url": "https://example.com", "routing_rules": [{"url": u}]}, "routing_rules[0].url"),
        ("/links/bulk", lambda u: {"links": [{"url": u}]}, None),  # NUL: the whole body is refused
        ("/bio-pages", lambda u: {"blocks": [{"type": "link", "label": "x", "url": u}]}, "blocks[0].url"),
        (
            "/bio-pages",
            lambda u: {"blocks": [{"type": "image", "url": "https://cdn.example/i.png", "config": {"href": u}}]},
            "blocks[0].config.href",
        ),
        (
            "/bio/pages",
            lambda u: {"title": "x", "page_data": {"links": [{"label": "x", "url": u}]}},
            "page_data.links[0].url",
        ),
    ],
)
def test_control_characters_in_a_url_are_refused(client, make_key, db, char, path, body, field) -> None:
    r = client.post(API + path, json=body(f"https://example.com/a{char}b"), headers=make_key().headers)
    if field is None and char == "\x00":
        assert error_fields(r) == ["links[0].url"]
    elif field is None:  # bulk: partial success, this row refused
        assert r.status_code == 201, r.text
        data = r.json()["data"]
        assert data["created"] == [] and data["errors"][0]["index"] == 0
    else:
        assert field in error_fields(r)
    assert db("SELECT (SELECT count(*) FROM bio_pages) + (SELECT count(*) FROM links) AS n")[0]["n"] == 0


def test_an_image_href_is_stored_as_it_was_checked(client, make_key, db) -> None:
    block = {"type": "image", "url": "https://cdn.example/i.png", "config": {"href": "  https://example.com/x  "}}
    r = client.post(API + "/bio-pages", json={"blocks": [block]}, headers=make_key().headers)
    assert r.status_code == 201, r.text
    assert [row["config"]["href"] for row in db("SELECT config FROM bio_blocks")] == ["https://example.com/x"]


def test_malformed_json_without_a_valid_key_is_401_not_400(client, make_key) -> None:
    bad = {"Content-Type": "application/json"}
    assert client.post(API + "/links", content=b"{nope", headers=bad).status_code == 401
    wrong = {**bad, "Authorization": "Bearer lk_abcdefgh.wrong"}
    assert client.post(API + "/links", content=b"{nope", headers=wrong).status_code == 401
    right = {**bad, **make_key().headers}
    assert client.post(API + "/links", content=b"{nope", headers=right).status_code == 400


def test_failed_authentications_are_throttled_per_address(client, make_key, db) -> None:
    from api.auth import AUTH_FAILURES_PER_MINUTE

    key = make_key()
    prefix = key.prefix
    statuses = [
        client.get(API + "/links", headers={"Authorization": f"Bearer lk_{prefix}.guess{i}"}).status_code
        for i in range(AUTH_FAILURES_PER_MINUTE + 5)
    ]
    assert statuses[:AUTH_FAILURES_PER_MINUTE] == [401] * AUTH_FAILURES_PER_MINUTE
    assert set(statuses[AUTH_FAILURES_PER_MINUTE:]) == {429}
    # Once over the limit even the right key waits: a guess can no longer tell right from wrong.
    r = client.get(API + "/links", headers=key.headers)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"


def test_rate_limits_hold_in_process_while_redis_is_down(env, make_key) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings
    from tests.redirector.edge_support import private_redis

    with private_redis() as (url, proc):
        settings = Settings.from_env({**env, "REDIS_URL": url})
        key = make_key(plan="free")  # 60 requests a minute
        with TestClient(create_app(settings)) as client:
            proc.terminate()
            proc.wait(10)
            statuses = [client.get(API + "/links", headers=key.headers).status_code for _ in range(65)]
    # Fail open (the API answers without Redis) but not unlimited: the 61st request in the minute is
    # refused. The first may straddle a minute boundary, so allow the count to restart once.
    assert statuses[0] == 200 and 429 in statuses
    assert statuses.count(200) in range(60, 66) and statuses.index(429) >= 60


def test_on_a_shared_host_page_urls_are_the_at_form_and_a_short_link_cannot_take_them(env, make_key) -> None:
    """BIO_BASE_URL equal to PUBLIC_BASE_URL: pages live at /@handle there, and every URL the API
    gives out for a page says so, so another team's short link /{handle} never stands in for it."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings
    from redirector.app import create_app as create_edge
    from redirector.settings import Settings as EdgeSettings

    shared = {**env, "PUBLIC_BASE_URL": "http://sho.rt", "BIO_BASE_URL": "http://sho.rt/", "LOCAL_CACHE": "0"}
    owner, other = make_key("owner"), make_key("other")
    with (
        TestClient(create_app(Settings.from_env(shared))) as client,
        TestClient(
            create_edge(EdgeSettings.from_env(shared)), base_url="http://sho.rt", follow_redirects=False
        ) as edge,
    ):
        page = client.post(API + "/bio-pages", json={"handle": "acme"}, headers=owner.headers).json()["data"]
        client.patch(f"{API}/bio-pages/{page['id']}", json={"is_published": True}, headers=owner.headers)
        shown = client.get(f"{API}/bio-pages/{page['id']}", headers=owner.headers).json()["data"]
        legacy = client.get(f"{API}/bio/pages/{page['id']}", headers=owner.headers).json()["data"]
        taken = {"url": "https://phish.example/", "custom_slug": "acme"}
        assert client.post(API + "/links", json=taken, headers=other.headers).status_code == 201
        assert shown["html_url"] == legacy["html_url"] == "http://sho.rt/@acme"
        served = edge.get("/@acme")
        assert served.status_code == 200 and 'rel="canonical" href="http://sho.rt/@acme"' in served.text
        assert edge.get("/acme").headers["location"] == "https://phish.example/"  # a short link, not the page


@pytest.mark.parametrize("variable", ["PUBLIC_BASE_URL", "BIO_BASE_URL"])
@pytest.mark.parametrize("value", ["https://sho.rt/pages", "ftp://sho.rt", "sho.rt", "https://sho.rt?x=1"])
def test_base_urls_the_edge_cannot_serve_are_refused_at_start_up(env, variable, value) -> None:
    from api.settings import Settings
    from redirector.settings import Settings as EdgeSettings
    from workers.settings import Settings as WorkerSettings

    for settings in (Settings, EdgeSettings, WorkerSettings):
        with pytest.raises(ValueError, match=variable):
            settings.from_env({**env, variable: value})


def test_postgres_down_is_a_503_with_retry_after_and_one_log_line(env, make_key, caplog) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings
    from tests.workers.proxy import Proxy

    key = make_key()
    parts = env["DATABASE_URL"].split("@", 1)
    host_port, _, database = parts[1].partition("/")
    host, _, port = host_port.partition(":")
    proxy = Proxy(host, int(port or 5432))
    proxy.start()
    try:
        settings = Settings.from_env({**env, "DATABASE_URL": f"{parts[0]}@{proxy.url_netloc}/{database}"})
        with TestClient(create_app(settings)) as client:
            assert client.get(API + "/links", headers=key.headers).status_code == 200
            proxy.cut()
            caplog.clear()
            answers = [client.get(API + "/links", headers=key.headers) for _ in range(10)]
            for r in answers:
                assert r.status_code == 503, r.text
                assert r.headers["Retry-After"] == "5"
                assert r.json()["error"]["code"] == "service_unavailable"
            errors = [rec for rec in caplog.records if rec.name == "linkedge.api"]
            assert len(errors) == 1 and errors[0].levelname == "WARNING" and errors[0].exc_info is None
            proxy.start()
            assert client.get(API + "/links", headers=key.headers).status_code == 200  # back by itself
    finally:
        proxy.close()


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ("cannot switch to state 12; another operation (2) is in progress", 503),
        ('cannot switch to state 12; protocol is in the "failed" state', 503),
        ("not connected", 503),
        ("some other client bug", 500),
    ],
)
def test_a_connection_broken_mid_operation_is_a_503_not_a_500(message: str, status: int) -> None:
    """asyncpg reports a connection that broke mid-query (seen in PostgreSQL restarts) as an
    InternalClientError about its protocol state; only those are an outage."""
    import asyncpg
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api.errors import install_handlers

    app = FastAPI()
    install_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise asyncpg.exceptions.InternalClientError(message)

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    assert r.status_code == status
    if status == 503:
        assert r.headers["retry-after"] == "5" and r.json()["error"]["code"] == "service_unavailable"
