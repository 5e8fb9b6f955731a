"""POST /links and GET /links/{id}: fields, defaults, validation, plan limits."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from urllib.parse import parse_qsl, urlsplit

import pytest

from api.plans import PLANS
from redirector.passwords import check_password

LINK_FIELDS = {
    "id",
    "short_url",
    "short_code",
    "destination",
    "enabled",
    "labels",
    "routing_rules",
    "scan_count",
    "last_scan_at",
    "expires_at",
    "created_at",
    "updated_at",
    "redirect_type",
    "forward_query",
    "max_clicks",
    "password_protected",
    "title",
    "notes",
    "utm",
    "domain",
    "expired_url",
    "crawlable",
}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def create(client, key, **body):
    return client.post("/api/v1/links", json=body, headers=key.headers)


def test_create_with_defaults(client, make_key, db) -> None:
    key = make_key()
    r = create(client, key, url="https://example.com/a")
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert set(data) == LINK_FIELDS
    assert re.fullmatch(r"[A-Za-z0-9]{7}", data["short_code"])
    assert data["short_url"] == f"http://sho.rt/{data['short_code']}"
    assert data["domain"] == "sho.rt" and data["expired_url"] is None and data["crawlable"] is False
    assert uuid.UUID(data["id"])
    assert data["destination"] == "https://example.com/a"
    assert (data["enabled"], data["labels"], data["routing_rules"]) == (True, [], [])
    assert (data["scan_count"], data["last_scan_at"], data["expires_at"]) == (0, None, None)
    assert RFC3339.match(data["created_at"]) and data["created_at"] == data["updated_at"]
    assert (data["redirect_type"], data["forward_query"], data["max_clicks"]) == (302, False, None)
    assert (data["password_protected"], data["title"], data["notes"], data["utm"]) == (False, None, None, {})
    [row] = db("SELECT team_id, code, url, destination FROM links")
    assert (row["team_id"], row["code"], row["url"]) == (key.team_id, data["short_code"], "https://example.com/a")


def test_create_with_every_field(client, make_key, db) -> None:
    key = make_key()
    body = {
        "url": "https://shop.example/p?x=1&utm_source=old#top",
        "custom_slug": "Full-Set",
        "labels": ["a", " b ", "a"],
        "routing_rules": [
            {"url": "https://acme.com/ca", "conditions": {"country": ["ca"], "device": ["iOS", "android"]}},
            {"split": [{"url": "https://a.example", "weight": 70}, {"url": "https://b.example", "weight": 30}]},
        ],
        "expires_at": "2030-01-02T03:04:05+02:00",
        "enabled": False,
        "redirect_type": 308,
        "forward_query": True,
        "max_clicks": 5,
        "password": "s3cret",
        "title": "Spring",
        "notes": "for the print run",
        "utm": {"source": "newsletter", "medium": "email", "campaign": "spring sale"},
    }
    r = client.post("/api/v1/links", json=body, headers=key.headers)
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert data["short_code"] == "Full-Set" and data["short_url"] == "http://sho.rt/Full-Set"
    assert data["labels"] == ["a", "b"]
    assert data["routing_rules"][0] == {
        "url": "https://acme.com/ca",
        "conditions": {"country": ["CA"], "device": ["ios", "android"]},
    }
    assert data["routing_rules"][1]["split"][0] == {"url": "https://a.example", "weight": 70}
    assert data["expires_at"] == "2030-01-02T01:04:05Z"
    assert (data["enabled"], data["redirect_type"], data["forward_query"], data["max_clicks"]) == (False, 308, True, 5)
    assert (data["password_protected"], data["title"], data["notes"]) == (True, "Spring", "for the print run")
    assert data["utm"] == {"source": "newsletter", "medium": "email", "campaign": "spring sale"}
    parts = urlsplit(data["destination"])
    assert (parts.netloc, parts.path, parts.fragment) == ("shop.example", "/p", "top")
    assert parse_qsl(parts.query) == [
        ("x", "1"),
        ("utm_source", "newsletter"),
        ("utm_medium", "email"),
        ("utm_campaign", "spring sale"),
    ]
    assert "s3cret" not in r.text and "pbkdf2" not in r.text
    [row] = db("SELECT url, password_hash FROM links")
    assert row["url"] == body["url"]
    assert re.fullmatch(r"pbkdf2_sha256\$\d+\$[0-9a-f]{32}\$[0-9a-f]{64}", row["password_hash"])
    assert check_password(row["password_hash"], "s3cret") and not check_password(row["password_hash"], "nope")


def test_get_returns_the_same_object(client, make_key) -> None:
    key = make_key()
    created = create(client, key, url="https://example.com/g", custom_slug="get-me").json()["data"]
    r = client.get(f"/api/v1/links/{created['id']}", headers=key.headers)
    assert r.status_code == 200
    assert r.json()["data"] == created


@pytest.mark.parametrize("link_id", ["not-a-uuid", "123", str(uuid.uuid4())])
def test_get_unknown_id_is_404(client, make_key, link_id) -> None:
    r = client.get(f"/api/v1/links/{link_id}", headers=make_key().headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_past_expiry_is_accepted(client, make_key) -> None:
    r = create(client, make_key(), url="https://example.com/old", expires_at="2001-01-01T00:00:00Z")
    assert r.status_code == 201
    assert r.json()["data"]["expires_at"] == "2001-01-01T00:00:00Z"


def test_naive_expiry_is_read_as_utc(client, make_key) -> None:
    r = create(client, make_key(), url="https://example.com/n", expires_at="2031-05-06T07:08:09")
    assert r.json()["data"]["expires_at"] == "2031-05-06T07:08:09Z"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "data:text/html,hi"}, "url"),
        ({"url": "/relative/path"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": 42}, "url"),
        ({"url": "https://e.com", "custom_slug": "ab"}, "custom_slug"),
        ({"url": "https://e.com", "custom_slug": "x" * 65}, "custom_slug"),
        ({"url": "https://e.com", "custom_slug": "has space"}, "custom_slug"),
        ({"url": "https://e.com", "custom_slug": "dots.no"}, "custom_slug"),
        ({"url": "https://e.com", "custom_slug": "api"}, "custom_slug"),
        ({"url": "https://e.com", "custom_slug": "Healthz"}, "custom_slug"),
        ({"url": "https://e.com", "labels": [str(i) for i in range(11)]}, "labels"),
        ({"url": "https://e.com", "labels": [""]}, "labels[0]"),
        ({"url": "https://e.com", "labels": ["x" * 51]}, "labels[0]"),
        ({"url": "https://e.com", "labels": "one"}, "labels"),
        (
            {"url": "https://e.com", "routing_rules": [{"url": "https://x.com", "conditions": {"device": ["fax"]}}]},
            "routing_rules[0].conditions.device",
        ),
        (
            {"url": "https://e.com", "routing_rules": [{"url": "https://x.com", "conditions": {"planet": ["mars"]}}]},
            "routing_rules[0].conditions.planet",
        ),
        (
            {
                "url": "https://e.com",
                "routing_rules": [
                    {"split": [{"url": "https://a.com", "weight": 60}, {"url": "https://b.com", "weight": 30}]}
                ],
            },
            "routing_rules[0].split",
        ),
        ({"url": "https://e.com", "routing_rules": {"url": "https://x.com"}}, "routing_rules"),
        (
            {
                "url": "https://e.com",
                "routing_rules": [{"url": "https://x.com", "conditions": {"query": {"a": "\x00"}}}],
            },
            "routing_rules[0].conditions.query.a",
        ),
        ({"url": "https://e.com", "max_clicks": 2**64}, "max_clicks"),
        ({"url": "https://e.com", "utm": {"source": float("nan")}}, "utm.source"),
        ({"url": "https://e.com", "expires_at": "next tuesday"}, "expires_at"),
        ({"url": "https://e.com", "expires_at": 1700000000}, "expires_at"),
        ({"url": "https://e.com", "redirect_type": 303}, "redirect_type"),
        ({"url": "https://e.com", "forward_query": "maybe"}, "forward_query"),
        ({"url": "https://e.com", "max_clicks": 0}, "max_clicks"),
        ({"url": "https://e.com", "max_clicks": 2**31}, "max_clicks"),
        ({"url": "https://e.com", "password": ""}, "password"),
        ({"url": "https://e.com", "title": "t" * 256}, "title"),
        ({"url": "https://e.com", "title": "nul\x00"}, "title"),
        ({"url": "https://e.com", "utm": {"source": "a", "channel": "b"}}, "utm.channel"),
        ({"url": "https://e.com", "colour": "red"}, "colour"),
        ({"url": "https://e.com", "title": "\ud800"}, "title"),  # a lone surrogate escape
        ({"url": "https://e.com", "bogus\udfff": 1}, "body"),
    ],
)
def test_invalid_create_is_422_naming_the_field(client, make_key, db, body, field) -> None:
    headers = {**make_key().headers, "Content-Type": "application/json"}
    # json.dumps escapes non-ASCII, so lone surrogates travel as the \ud800 escapes a client could send
    r = client.post("/api/v1/links", content=json.dumps(body), headers=headers)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_failed"
    assert field in [d["field"] for d in error["details"]]
    assert error["message"].endswith(".") and field in error["message"]
    assert db("SELECT count(*) AS n FROM links")[0]["n"] == 0


def test_taken_slug_is_409(client, make_key) -> None:
    key = make_key()
    assert create(client, key, url="https://e.com/1", custom_slug="page1").status_code == 201
    r = create(client, make_key("other"), url="https://e.com/2", custom_slug="page1")
    assert r.status_code == 409
    assert r.json()["error"] == {"code": "conflict", "message": "The slug 'page1' is already in use."}


def test_slugs_are_case_sensitive(client, make_key) -> None:
    key = make_key()
    assert create(client, key, url="https://e.com/1", custom_slug="Promo").status_code == 201
    assert create(client, key, url="https://e.com/2", custom_slug="promo").status_code == 201


def test_plan_limit_is_402(client, make_key, db, monkeypatch) -> None:
    monkeypatch.setitem(PLANS, "free", dataclasses.replace(PLANS["free"], max_links=2))
    key = make_key(plan="free")
    for i in range(2):
        assert create(client, key, url=f"https://e.com/{i}").status_code == 201
    r = create(client, key, url="https://e.com/3")
    assert r.status_code == 402
    assert r.json()["error"]["code"] == "plan_limit"
    assert "free plan allows 2 links" in r.json()["error"]["message"]
    assert db("SELECT count(*) AS n FROM links")[0]["n"] == 2
    # another team has its own allowance
    assert create(client, make_key("b", plan="free"), url="https://e.com/4").status_code == 201


def test_plan_limit_holds_under_concurrent_creates(client, make_key, db, monkeypatch) -> None:
    import concurrent.futures

    monkeypatch.setitem(PLANS, "free", dataclasses.replace(PLANS["free"], max_links=3))
    key = make_key(plan="free")
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda i: create(client, key, url=f"https://e.com/{i}").status_code, range(8)))
    assert sorted(statuses) == [201] * 3 + [402] * 5
    assert db("SELECT count(*) AS n FROM links")[0]["n"] == 3
