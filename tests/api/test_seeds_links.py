"""Creating one link and a bulk of links with the exact bytes a curl client sends: only the base URL and
the key vary. Every response field is asserted, in its order, with its value."""

from __future__ import annotations

import re
import uuid

import httpx

# The bodies as curl's -d sends them, byte for byte (spacing and line breaks included).
CREATE_BODY = (
    b'{ "url": "https://example.com/summer-sale?utm_source=qr", "custom_slug": "summer24", '
    b'"labels": ["campaign", "summer"], "expires_at": "2026-09-30T23:59:59Z" }'
)
BULK_BODY = b"""{
"links": [
{
"url": "https://example.com/page-one",
"custom_slug": "page1",
"labels": ["batch-march"]
},
{
"url": "https://example.com/page-two",
"custom_slug": "page2",
"labels": ["batch-march"]
},
{
"url": "https://example.com/page-three",
"labels": ["batch-march"]
}
]
}"""
CONFLICT_BODY = b"""{
"links": [
{
"url": "https://example.com/page-one",
"custom_slug": "page1",
"labels": ["batch-march"]
}
]
}"""

SEED_FIELDS = [
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
]
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def curl_post(client, path: str, key, body: bytes) -> httpx.Response:
    """``curl -X POST <base>/api/v1/... -H "Authorization: Bearer <key>" -H "Content-Type: application/json" -d ...``"""
    headers = {"Authorization": f"Bearer {key.key}", "Content-Type": "application/json"}
    return client.post(path, content=body, headers=headers)


def assert_seed_link(link: dict, *, code: str | None, destination: str, labels: list[str], expires_at) -> None:
    assert list(link)[: len(SEED_FIELDS)] == SEED_FIELDS  # these fields first, in this order
    assert uuid.UUID(link["id"])
    if code is None:
        assert re.fullmatch(r"[A-Za-z0-9]{7}", link["short_code"])
    else:
        assert link["short_code"] == code
    assert link["short_url"] == "http://sho.rt/" + link["short_code"]
    assert link["destination"] == destination
    assert link["enabled"] is True
    assert link["labels"] == labels
    assert link["routing_rules"] == []
    assert link["scan_count"] == 0
    assert link["last_scan_at"] is None
    assert link["expires_at"] == expires_at
    assert STAMP.match(link["created_at"]) and link["updated_at"] == link["created_at"]


def assert_seed_meta(response: httpx.Response, remaining: int) -> None:
    meta = response.json()["meta"]
    assert re.fullmatch(r"req_[0-9a-f]{16}", meta["request_id"])
    assert meta["request_id"] == response.headers["x-request-id"]
    rate = meta["rate_limit"]
    assert (rate["limit"], rate["remaining"]) == (600, remaining)
    assert isinstance(rate["reset"], int) and rate["reset"] % 60 == 0


def test_create_link_seed(client, make_key) -> None:
    key = make_key(plan="pro")  # a pro key allows 600 requests a minute
    r = curl_post(client, "/api/v1/links", key, CREATE_BODY)
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert_seed_link(
        data,
        code="summer24",
        destination="https://example.com/summer-sale?utm_source=qr",
        labels=["campaign", "summer"],
        expires_at="2026-09-30T23:59:59Z",
    )
    assert data["short_url"] == "http://sho.rt/summer24"  # console.log(data.short_url)
    assert_seed_meta(r, remaining=599)


def test_create_link_seed_python_example(client, make_key) -> None:
    key = make_key()
    r = client.post(
        "/api/v1/links",
        headers={"Authorization": f"Bearer {key.key}"},
        json={
            "url": "https://example.com/summer-sale?utm_source=qr",
            "custom_slug": "summer24",
            "labels": ["campaign", "summer"],
            "expires_at": "2026-09-30T23:59:59Z",
        },
    )
    assert r.status_code == 201
    assert r.json()["data"]["short_url"] == "http://sho.rt/summer24"  # print(data["short_url"])


def test_bulk_create_seed(client, make_key) -> None:
    key = make_key()
    r = curl_post(client, "/api/v1/links/bulk", key, BULK_BODY)
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert list(data) == ["created", "errors"]
    assert data["errors"] == []
    one, two, three = data["created"]
    assert_seed_link(
        one, code="page1", destination="https://example.com/page-one", labels=["batch-march"], expires_at=None
    )
    assert_seed_link(
        two, code="page2", destination="https://example.com/page-two", labels=["batch-march"], expires_at=None
    )
    assert_seed_link(
        three, code=None, destination="https://example.com/page-three", labels=["batch-march"], expires_at=None
    )
    assert_seed_meta(r, remaining=599)


def test_bulk_create_seed_conflict(client, make_key) -> None:
    key = make_key()
    assert curl_post(client, "/api/v1/links/bulk", key, BULK_BODY).status_code == 201

    r = curl_post(client, "/api/v1/links/bulk", key, CONFLICT_BODY)
    assert r.status_code == 201
    assert r.json()["data"] == {
        "created": [],
        "errors": [{"index": 0, "error": "conflict", "message": "The slug 'page1' is already in use."}],
    }
    assert_seed_meta(r, remaining=598)

    # the whole bulk body again: both slugs conflict, the random-code item is created
    r = curl_post(client, "/api/v1/links/bulk", key, BULK_BODY)
    data = r.json()["data"]
    assert [(e["index"], e["error"], e["message"]) for e in data["errors"]] == [
        (0, "conflict", "The slug 'page1' is already in use."),
        (1, "conflict", "The slug 'page2' is already in use."),
    ]
    assert [c["destination"] for c in data["created"]] == ["https://example.com/page-three"]
