"""Conventions every API route shares, seen through the link routes: envelope, request ids, auth, limits, OpenAPI."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import asyncpg
import pytest

from api.teams import revoke_key


def assert_request_id(r) -> None:
    rid = r.headers["x-request-id"]
    assert rid.startswith("req_") and len(rid) > 8
    if r.headers.get("content-type", "").startswith("application/json"):
        assert r.json()["meta"]["request_id"] == rid


def test_every_response_carries_its_request_id(client, make_key) -> None:
    key = make_key()
    link = client.post("/api/v1/links", json={"url": "https://e.com/r"}, headers=key.headers)
    responses = [
        link,
        client.get("/api/v1/links", headers=key.headers),
        client.get(f"/api/v1/links/{link.json()['data']['id']}/qr", headers=key.headers),
        client.get("/api/v1/links"),  # 401
        client.get("/api/v1/links/nope", headers=key.headers),  # 404
        client.post("/api/v1/links", json={"url": "x"}, headers=key.headers),  # 422
        client.post("/api/v1/links", content=b"{", headers={**key.headers, "content-type": "application/json"}),
        client.get("/api/v1/no-such-route"),
    ]
    ids = set()
    for r in responses:
        assert_request_id(r)
        ids.add(r.headers["x-request-id"])
    assert len(ids) == len(responses)


def test_success_envelope_shape(client, make_key) -> None:
    r = client.post("/api/v1/links", json={"url": "https://e.com/s"}, headers=make_key().headers)
    body = r.json()
    assert set(body) == {"data", "meta"}
    assert set(body["meta"]) == {"request_id", "rate_limit"}
    assert set(body["meta"]["rate_limit"]) == {"limit", "remaining", "reset", "reset_at"}
    assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "lk_abc.def", "Basic dXNlcjpwYXNz", "Bearer", "Bearer nodot", "Bearer lk_nodot", "Bearer xx_abc.def"],
)
def test_missing_or_malformed_key_is_401(client, authorization) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    r = client.get("/api/v1/links", headers=headers)
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["code"] == "unauthorized" and error["message"].endswith(".")
    assert "x-ratelimit-limit" not in r.headers
    assert_request_id(r)


def test_invalid_and_revoked_keys_are_401(client, make_key, settings, run) -> None:
    key = make_key()
    wrong_secret = key.key.rsplit(".", 1)[0] + ".not-the-secret"
    assert client.get("/api/v1/links", headers={"Authorization": f"Bearer {wrong_secret}"}).status_code == 401
    unknown = "lk_zzzzzzzz.abcdefabcdefabcdefabcdefabcdefab"
    assert client.get("/api/v1/links", headers={"Authorization": f"Bearer {unknown}"}).status_code == 401
    assert client.get("/api/v1/links", headers=key.headers).status_code == 200

    async def revoke() -> bool:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await revoke_key(conn, key.prefix)
        finally:
            await conn.close()

    assert run(revoke())
    r = client.get("/api/v1/links", headers=key.headers)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_malformed_json_is_400(client, make_key, db) -> None:
    key = make_key()
    for path in ("/api/v1/links", "/api/v1/links/bulk"):
        r = client.post(
            path, content=b'{"url": "https://e.com",', headers={**key.headers, "content-type": "application/json"}
        )
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "malformed_json"
    assert db("SELECT count(*) AS n FROM links")[0]["n"] == 0


def test_body_over_one_mib_is_413(client, make_key, db) -> None:
    key = make_key()
    body = b'{"url": "https://e.com/' + b"a" * (1024 * 1024) + b'"}'
    r = client.post("/api/v1/links", content=body, headers={**key.headers, "content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert_request_id(r)
    assert db("SELECT count(*) AS n FROM links")[0]["n"] == 0


def test_streamed_body_over_one_mib_is_413(client, make_key, db) -> None:
    """No Content-Length (chunked upload): the limit still holds while the body streams in."""
    key = make_key()
    chunks = [b'{"url": "https://e.com/'] + [b"a" * 65536] * 17 + [b'"}']
    r = client.post("/api/v1/links", content=iter(chunks), headers={**key.headers, "content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert db("SELECT count(*) AS n FROM links")[0]["n"] == 0


def test_json_without_content_type_is_accepted(client, make_key) -> None:
    """`curl -d '{...}'` sends form-urlencoded by default; the body is still JSON."""
    key = make_key()
    r = client.post("/api/v1/links", content=b'{"url": "https://e.com/x"}', headers=key.headers)
    assert r.status_code == 201, r.text


def wait_for_a_fresh_minute(margin: float = 15.0) -> None:
    """Limits are fixed one-minute windows: start a burst early in one so it can't straddle two."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def test_free_plan_rate_limit(client, make_key) -> None:
    key = make_key(plan="free")
    other = make_key("other-team", plan="free")
    wait_for_a_fresh_minute()
    remaining = []
    for _ in range(60):
        r = client.get("/api/v1/links", headers=key.headers)
        assert r.status_code == 200
        rate = r.json()["meta"]["rate_limit"]
        assert r.headers["x-ratelimit-limit"] == "60" == str(rate["limit"])
        assert r.headers["x-ratelimit-remaining"] == str(rate["remaining"])
        assert r.headers["x-ratelimit-reset"] == str(rate["reset"])
        assert rate["reset_at"] == datetime.fromtimestamp(rate["reset"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert 0 < rate["reset"] - time.time() <= 60
        remaining.append(rate["remaining"])
    assert remaining == list(range(59, -1, -1))

    r = client.get("/api/v1/links", headers=key.headers)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert_request_id(r)
    # writes are limited too, and the limit is per key
    assert client.post("/api/v1/links", json={"url": "https://e.com"}, headers=key.headers).status_code == 429
    assert client.get("/api/v1/links", headers=other.headers).status_code == 200


def test_openapi_documents_the_link_routes(client) -> None:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    assert set(paths["/api/v1/links"]) >= {"get", "post"}
    assert set(paths["/api/v1/links/bulk"]) == {"post"}
    assert set(paths["/api/v1/links/{link_id}"]) == {"get", "patch", "delete"}
    assert set(paths["/api/v1/links/{link_id}/qr"]) == {"get"}
    for path in paths:
        for op in paths[path].values():
            if path.startswith("/api/v1/links"):
                assert op["summary"]

    def body_ref(path: str, method: str) -> str:
        return paths[path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]

    assert body_ref("/api/v1/links", "post").endswith("/LinkCreate")
    assert body_ref("/api/v1/links/{link_id}", "patch").endswith("/LinkUpdate")
    bulk = doc["components"]["schemas"][body_ref("/api/v1/links/bulk", "post").rsplit("/", 1)[1]]
    assert bulk["properties"]["links"]["items"]["$ref"].endswith("/LinkCreate")
    assert bulk["properties"]["links"]["maxItems"] == 100
    create = doc["components"]["schemas"]["LinkCreate"]
    assert create["required"] == ["url"] and create["additionalProperties"] is False
    assert {"custom_slug", "labels", "routing_rules", "expires_at", "utm", "password"} <= set(create["properties"])
    qr = paths["/api/v1/links/{link_id}/qr"]["get"]
    assert set(qr["responses"]["200"]["content"]) == {"image/svg+xml", "image/png"}
    assert "401" in paths["/api/v1/links"]["post"]["responses"]
