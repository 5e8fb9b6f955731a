"""End to end: what the API writes is what the public short URL does on the edge."""

from __future__ import annotations


def test_api_writes_drive_the_edge(client, make_key, edge) -> None:
    key = make_key()
    body = {"url": "https://e.com/p?a=1", "custom_slug": "e2e", "utm": {"source": "qr"}, "redirect_type": 301}
    link = client.post("/api/v1/links", json=body, headers=key.headers).json()["data"]
    r = edge.get("/e2e")
    assert r.status_code == 301
    assert r.headers["location"] == link["destination"] == "https://e.com/p?a=1&utm_source=qr"

    client.patch(f"/api/v1/links/{link['id']}", json={"enabled": False}, headers=key.headers)
    assert edge.get("/e2e").status_code == 404
    client.patch(f"/api/v1/links/{link['id']}", json={"enabled": True, "custom_slug": "e2e-new"}, headers=key.headers)
    assert edge.get("/e2e").status_code == 404
    assert edge.get("/e2e-new").status_code == 301

    client.delete(f"/api/v1/links/{link['id']}", headers=key.headers)
    assert edge.get("/e2e-new").status_code == 404


def test_born_expired_link_is_410(client, make_key, edge) -> None:
    body = {"url": "https://e.com/old", "custom_slug": "expired", "expires_at": "2001-01-01T00:00:00Z"}
    assert client.post("/api/v1/links", json=body, headers=make_key().headers).status_code == 201
    assert edge.get("/expired").status_code == 410


def test_password_set_by_the_api_opens_the_link(client, make_key, edge) -> None:
    key = make_key()
    body = {"url": "https://e.com/secret", "custom_slug": "locked", "password": "open sesame"}
    client.post("/api/v1/links", json=body, headers=key.headers)
    assert edge.get("/locked").status_code == 200  # the password form
    assert edge.post("/locked", data={"password": "wrong"}).status_code == 401
    r = edge.post("/locked", data={"password": "open sesame"})
    assert r.status_code == 303 and r.headers["location"] == "https://e.com/secret"
