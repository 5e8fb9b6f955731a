"""PATCH and DELETE /links/{id}, and the write-through to the Redis cache after every write."""

from __future__ import annotations

import uuid

import pytest

from redirector.cache import decode_record
from redirector.keys import invalidation_channel, link_key, page_key
from redirector.passwords import check_password


def create(client, key, **body):
    r = client.post("/api/v1/links", json=body, headers=key.headers)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def patch(client, key, link_id, body):
    return client.patch(f"/api/v1/links/{link_id}", json=body, headers=key.headers)


def cached(sync_redis, settings, code):
    raw = sync_redis.get(link_key(settings.key_prefix, code))
    return None if raw is None else decode_record(raw)


def test_create_writes_the_cache_record(client, make_key, sync_redis, settings) -> None:
    key = make_key()
    link = create(
        client,
        key,
        url="https://e.com/x",
        custom_slug="cached",
        redirect_type=301,
        forward_query=True,
        max_clicks=3,
        expires_at="2030-01-01T00:00:00Z",
        password="pw",
        utm={"source": "qr"},
        routing_rules=[{"url": "https://e.com/ca", "conditions": {"country": ["CA"]}}],
    )
    record = cached(sync_redis, settings, "cached")
    assert record is not None
    assert (record.id, record.team_id, record.code) == (link["id"], str(key.team_id), "cached")
    assert record.url == "https://e.com/x?utm_source=qr" == link["destination"]
    assert (record.status, record.enabled, record.forward_query, record.max_clicks) == (301, True, True, 3)
    assert record.expires_at == 1893456000.0
    assert record.password_hash and check_password(record.password_hash, "pw")
    assert list(record.raw_rules) == link["routing_rules"]
    assert record.rules[0].countries == frozenset({"CA"})


def test_patch_changes_fields_and_cache(client, make_key, sync_redis, settings, db) -> None:
    key = make_key()
    link = create(client, key, url="https://e.com/before", custom_slug="patchme", title="t", max_clicks=9)
    r = patch(
        client,
        key,
        link["id"],
        {"url": "https://e.com/after", "enabled": False, "labels": ["x"], "redirect_type": 307, "title": None},
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["destination"], data["enabled"], data["labels"], data["redirect_type"]) == (
        "https://e.com/after",
        False,
        ["x"],
        307,
    )
    assert data["title"] is None and data["max_clicks"] == 9  # absent fields are untouched
    assert data["created_at"] == link["created_at"] and data["updated_at"] >= link["updated_at"]
    assert db("SELECT updated_at > created_at AS moved FROM links")[0]["moved"]
    record = cached(sync_redis, settings, "patchme")
    assert (record.url, record.enabled, record.status) == ("https://e.com/after", False, 307)
    assert client.get(f"/api/v1/links/{link['id']}", headers=key.headers).json()["data"] == data


def test_patch_nulls_clear_nullable_fields(client, make_key, sync_redis, settings) -> None:
    key = make_key()
    link = create(
        client,
        key,
        url="https://e.com/p?utm_medium=x",
        password="pw",
        max_clicks=2,
        expires_at="2030-01-01T00:00:00Z",
        notes="n",
        labels=["a"],
        utm={"medium": "print"},
        routing_rules=[{"url": "https://e.com/ca", "conditions": {"country": ["CA"]}}],
    )
    assert link["destination"] == "https://e.com/p?utm_medium=print"
    body = dict.fromkeys(["password", "max_clicks", "expires_at", "notes", "labels", "utm", "routing_rules"])
    data = patch(client, key, link["id"], body).json()["data"]
    assert data["password_protected"] is False
    assert (data["max_clicks"], data["expires_at"], data["notes"]) == (None, None, None)
    assert (data["labels"], data["utm"], data["routing_rules"]) == ([], {}, [])
    assert data["destination"] == "https://e.com/p?utm_medium=x"  # the URL as given, utm removed
    record = cached(sync_redis, settings, link["short_code"])
    assert (record.password_hash, record.max_clicks, record.expires_at, record.raw_rules) == (None, None, None, ())


def test_patch_utm_keeps_url_and_new_password_verifies(client, make_key, db) -> None:
    key = make_key()
    link = create(client, key, url="https://e.com/u?a=1", password="old")
    data = patch(client, key, link["id"], {"utm": {"campaign": "c 1"}, "password": "new"}).json()["data"]
    assert data["destination"] == "https://e.com/u?a=1&utm_campaign=c%201"
    [row] = db("SELECT url, password_hash FROM links")
    assert row["url"] == "https://e.com/u?a=1"
    assert check_password(row["password_hash"], "new") and not check_password(row["password_hash"], "old")
    data = patch(client, key, link["id"], {"url": "https://e.com/v"}).json()["data"]
    assert data["destination"] == "https://e.com/v?utm_campaign=c%201"


def test_empty_patch_changes_nothing(client, make_key) -> None:
    key = make_key()
    link = create(client, key, url="https://e.com/same")
    r = patch(client, key, link["id"], {})
    assert r.status_code == 200 and r.json()["data"] == link


def test_patch_slug_moves_the_cache_record(client, make_key, sync_redis, settings) -> None:
    key = make_key()
    link = create(client, key, url="https://e.com/m", custom_slug="old-code")
    pubsub = sync_redis.pubsub()
    pubsub.subscribe(invalidation_channel(settings.key_prefix))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    r = patch(client, key, link["id"], {"custom_slug": "new-code"})
    assert r.status_code == 200
    assert r.json()["data"]["short_url"] == "http://sho.rt/new-code"
    assert cached(sync_redis, settings, "old-code") is None
    assert cached(sync_redis, settings, "new-code").id == link["id"]
    published = {pubsub.get_message(timeout=1)["data"] for _ in range(2)}
    assert published == {link_key(settings.key_prefix, c).encode() for c in ("old-code", "new-code")}
    pubsub.close()
    # the old code is free again
    assert client.post("/api/v1/links", json={"url": "https://e.com/n", "custom_slug": "old-code"}, headers=key.headers)


def test_patch_to_taken_slug_is_409_and_changes_nothing(client, make_key, db) -> None:
    key = make_key()
    create(client, key, url="https://e.com/1", custom_slug="taken")
    link = create(client, key, url="https://e.com/2", custom_slug="mine")
    r = patch(client, key, link["id"], {"custom_slug": "taken", "title": "x"})
    assert r.status_code == 409
    assert r.json()["error"]["message"] == "The slug 'taken' is already in use."
    assert db("SELECT title FROM links WHERE code = 'mine'")[0]["title"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": None}, "url"),
        ({"url": "javascript:void(0)"}, "url"),
        ({"enabled": None}, "enabled"),
        ({"custom_slug": None}, "custom_slug"),
        ({"custom_slug": "metrics"}, "custom_slug"),
        ({"redirect_type": 200}, "redirect_type"),
        (
            {"routing_rules": [{"url": "https://x.com", "conditions": {"country": ["Canada"]}}]},
            "routing_rules[0].conditions.country",
        ),
        ({"short_code": "nope"}, "short_code"),
    ],
)
def test_invalid_patch_is_422(client, make_key, body, field) -> None:
    key = make_key()
    link = create(client, key, url="https://e.com/v")
    r = patch(client, key, link["id"], body)
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["error"]["details"]]


def test_patch_unknown_link_is_404(client, make_key) -> None:
    key = make_key()
    assert patch(client, key, uuid.uuid4(), {"title": "x"}).status_code == 404
    assert patch(client, key, "nope", {"title": "x"}).status_code == 404


def test_delete_removes_row_and_cache(client, make_key, db, sync_redis, settings) -> None:
    key = make_key()
    link = create(client, key, url="https://e.com/d", custom_slug="bye")
    assert cached(sync_redis, settings, "bye") is not None
    pubsub = sync_redis.pubsub()
    pubsub.subscribe(invalidation_channel(settings.key_prefix))
    pubsub.get_message(timeout=1)
    r = client.delete(f"/api/v1/links/{link['id']}", headers=key.headers)
    assert r.status_code == 200
    assert r.json()["data"] == {"id": link["id"], "deleted": True}
    assert db("SELECT count(*) AS n FROM links")[0]["n"] == 0
    assert sync_redis.exists(link_key(settings.key_prefix, "bye")) == 0
    assert pubsub.get_message(timeout=1)["data"] == link_key(settings.key_prefix, "bye").encode()
    pubsub.close()
    assert client.get(f"/api/v1/links/{link['id']}", headers=key.headers).status_code == 404
    assert client.delete(f"/api/v1/links/{link['id']}", headers=key.headers).status_code == 404
    assert client.delete("/api/v1/links/not-a-uuid", headers=key.headers).status_code == 404


def test_code_change_and_delete_refresh_bio_pages_using_the_link(client, make_key, db, sync_redis, settings) -> None:
    key = make_key()
    link = create(client, key, url="https://e.com/bio", custom_slug="bio-link")
    page_id, block_id = uuid.uuid4(), uuid.uuid4()
    db("INSERT INTO bio_pages (id, team_id, handle) VALUES ($1, $2, 'Shop')", page_id, key.team_id)
    db(
        "INSERT INTO bio_blocks (id, page_id, type, link_id) VALUES ($1, $2, 'link', $3)",
        block_id,
        page_id,
        uuid.UUID(link["id"]),
    )
    page = page_key(settings.key_prefix, "Shop").encode()
    pubsub = sync_redis.pubsub()
    pubsub.subscribe(invalidation_channel(settings.key_prefix))
    pubsub.get_message(timeout=1)

    patch(client, key, link["id"], {"title": "no code change"})
    assert pubsub.get_message(timeout=1)["data"] == link_key(settings.key_prefix, "bio-link").encode()
    assert pubsub.get_message(timeout=0.2) is None  # the page embeds only the code: untouched

    patch(client, key, link["id"], {"custom_slug": "bio-link-2"})
    published = [pubsub.get_message(timeout=1)["data"] for _ in range(3)]
    assert page in published

    client.delete(f"/api/v1/links/{link['id']}", headers=key.headers)
    published = [pubsub.get_message(timeout=1)["data"] for _ in range(2)]
    assert page in published
    assert db("SELECT link_id FROM bio_blocks")[0]["link_id"] is None
    pubsub.close()
