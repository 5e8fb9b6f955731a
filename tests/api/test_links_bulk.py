"""POST /links/bulk: partial success, per-item errors by index, limits."""

from __future__ import annotations

import dataclasses

import pytest

from api.plans import PLANS
from redirector.keys import link_key


def post_bulk(client, key, body):
    return client.post("/api/v1/links/bulk", json=body, headers=key.headers)


def test_mixed_items_create_the_valid_ones(client, make_key, db, sync_redis, settings) -> None:
    key = make_key()
    assert client.post("/api/v1/links", json={"url": "https://e.com/t", "custom_slug": "taken"}, headers=key.headers)
    items = [
        {"url": "https://e.com/0", "custom_slug": "first"},
        {"url": "javascript:alert(1)"},
        {"url": "https://e.com/2", "custom_slug": "taken"},
        "not an object",
        {"url": "https://e.com/4", "routing_rules": [{"url": "https://x.com", "conditions": {"device": ["toaster"]}}]},
        {"url": "https://e.com/5", "custom_slug": "first"},  # taken earlier in this same request
        {"url": "https://e.com/6", "bogus": 1},
        {"url": "https://e.com/7", "labels": ["ok"]},
    ]
    r = post_bulk(client, key, {"links": items})
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert [c["destination"] for c in data["created"]] == ["https://e.com/0", "https://e.com/7"]
    errors = {e["index"]: e for e in data["errors"]}
    assert sorted(errors) == [1, 2, 3, 4, 5, 6]
    assert {i: e["error"] for i, e in errors.items()} == {
        1: "validation_failed",
        2: "conflict",
        3: "validation_failed",
        4: "validation_failed",
        5: "conflict",
        6: "validation_failed",
    }
    assert errors[2]["message"] == "The slug 'taken' is already in use."
    assert errors[5]["message"] == "The slug 'first' is already in use."
    assert "url" in errors[1]["message"]
    assert "routing_rules[0].conditions.device" in errors[4]["message"]
    assert "bogus" in errors[6]["message"]
    assert all(set(e) == {"index", "error", "message"} and e["message"].endswith(".") for e in data["errors"])
    assert db("SELECT count(*) AS n FROM links")[0]["n"] == 3
    for link in data["created"]:
        assert sync_redis.exists(link_key(settings.key_prefix, link["short_code"]))


def test_all_items_failing_is_still_201(client, make_key) -> None:
    r = post_bulk(client, make_key(), {"links": [{"url": "nope"}]})
    assert r.status_code == 201
    assert r.json()["data"]["created"] == []
    assert r.json()["data"]["errors"][0]["index"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"links": [{"url": f"https://e.com/{i}"} for i in range(101)]},
        {"links": []},
        {"links": {"url": "https://e.com"}},
        {},
        {"links": [{"url": "https://e.com"}], "extra": True},
        [{"url": "https://e.com"}],
    ],
)
def test_malformed_bulk_bodies_are_422(client, make_key, db, body) -> None:
    r = post_bulk(client, make_key(), body)
    assert r.status_code == 422, r.text
    fields = [d["field"] for d in r.json()["error"]["details"]]
    assert fields and all(f in ("links", "extra", "body") for f in fields)
    assert db("SELECT count(*) AS n FROM links")[0]["n"] == 0


def test_hundred_items_are_fine(client, make_key) -> None:
    r = post_bulk(client, make_key(), {"links": [{"url": f"https://e.com/{i}"} for i in range(100)]})
    assert r.status_code == 201
    created = r.json()["data"]["created"]
    assert len(created) == 100 and len({c["short_code"] for c in created}) == 100


def test_bulk_stops_at_the_plan_limit(client, make_key, db, monkeypatch) -> None:
    monkeypatch.setitem(PLANS, "free", dataclasses.replace(PLANS["free"], max_links=3))
    key = make_key(plan="free")
    assert client.post("/api/v1/links", json={"url": "https://e.com/x"}, headers=key.headers).status_code == 201
    r = post_bulk(client, key, {"links": [{"url": "bad"}] + [{"url": f"https://e.com/{i}"} for i in range(4)]})
    assert r.status_code == 201
    data = r.json()["data"]
    assert len(data["created"]) == 2
    assert [(e["index"], e["error"]) for e in data["errors"]] == [
        (0, "validation_failed"),
        (3, "plan_limit"),
        (4, "plan_limit"),
    ]
    assert db("SELECT count(*) AS n FROM links")[0]["n"] == 3


def test_bulk_passwords_are_hashed(client, make_key, db) -> None:
    items = [{"url": f"https://e.com/{i}", "password": f"pw{i}"} for i in range(3)]
    r = post_bulk(client, make_key(), {"links": items})
    assert all(c["password_protected"] for c in r.json()["data"]["created"])
    hashes = [row["password_hash"] for row in db("SELECT password_hash FROM links")]
    assert len(set(hashes)) == 3 and all(h.startswith("pbkdf2_sha256$") for h in hashes)
