"""Who may touch a link: tenant isolation (404) and abilities (403) on every link route."""

from __future__ import annotations

import pytest

LINK = "https://e.com/mine"


def routes(link_id: str) -> list[tuple[str, str, dict | None]]:
    """(method, path, json body) for every link route."""
    return [
        ("POST", "/api/v1/links", {"url": LINK}),
        ("POST", "/api/v1/links/bulk", {"links": [{"url": LINK}]}),
        ("GET", "/api/v1/links", None),
        ("GET", f"/api/v1/links/{link_id}", None),
        ("PATCH", f"/api/v1/links/{link_id}", {"title": "x"}),
        ("GET", f"/api/v1/links/{link_id}/qr", None),
        ("DELETE", f"/api/v1/links/{link_id}", None),
    ]


ABILITY = {"GET": "links:read", "POST": "links:write", "PATCH": "links:write", "DELETE": "links:write"}


@pytest.fixture
def owned(client, make_key):
    owner = make_key("owner")
    link = client.post("/api/v1/links", json={"url": LINK, "custom_slug": "owned"}, headers=owner.headers).json()
    return owner, link["data"]


def test_other_team_gets_404_on_every_link_route(client, make_key, db, owned) -> None:
    owner, link = owned
    stranger = make_key("stranger")
    for method, path, body in routes(link["id"]):
        if path.endswith(("/links", "/bulk")):
            continue  # not about one link; the list is checked below
        r = client.request(method, path, json=body, headers=stranger.headers)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/links", headers=stranger.headers).json()["data"] == []
    # untouched, and still the owner's
    [row] = db("SELECT title, team_id FROM links")
    assert (row["title"], row["team_id"]) == (None, owner.team_id)
    assert client.get(f"/api/v1/links/{link['id']}", headers=owner.headers).status_code == 200


@pytest.mark.parametrize("missing", ["links:read", "links:write"])
def test_each_route_needs_its_ability(client, make_key, db, owned, missing) -> None:
    _, link = owned
    others = [a for a in ("links:read", "links:write", "links:analytics:read", "bio:read") if a != missing]
    key = make_key("owner", abilities=others)
    for method, path, body in routes(link["id"]):
        r = client.request(method, path, json=body, headers=key.headers)
        if ABILITY[method] == missing:
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error"]["code"] == "forbidden" and missing in r.json()["error"]["message"]
        else:
            assert r.status_code in (200, 201), (method, path, r.text)
    assert client.get("/api/v1/links", headers=make_key("owner").headers).status_code == 200


def test_forbidden_writes_change_nothing(client, make_key, db, owned) -> None:
    _, link = owned
    reader = make_key("owner", abilities=["links:read"])
    client.patch(f"/api/v1/links/{link['id']}", json={"title": "x"}, headers=reader.headers)
    client.delete(f"/api/v1/links/{link['id']}", headers=reader.headers)
    client.post("/api/v1/links", json={"url": LINK}, headers=reader.headers)
    assert [(r["code"], r["title"]) for r in db("SELECT code, title FROM links")] == [("owned", None)]
