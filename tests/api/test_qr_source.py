"""QR scans apart from clicks: the QR code encodes the short URL with ?qr=1, the edge counts such a
hit as source qr and drops the marker, and link stats break clicks down by source."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.links.qr import render_qr
from tests.api.support import Api, data, roll_up

BROWSER = {"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"}


def test_the_qr_code_encodes_the_short_url_with_the_marker(api: Api) -> None:
    link = data(api.post("/links", json={"url": "https://example.com/p", "custom_slug": "scan-me"}), 201)
    image = api.get(f"/links/{link['id']}/qr?format=png&size=300")
    assert image.status_code == 200
    assert image.content == render_qr("http://sho.rt/scan-me?qr=1", "png", 300)
    assert image.content != render_qr("http://sho.rt/scan-me", "png", 300)


def test_scans_are_counted_as_qr_and_the_marker_never_reaches_the_destination(
    api: Api, edge: TestClient, env: dict[str, str]
) -> None:
    plain = data(api.post("/links", json={"url": "https://example.com/p", "custom_slug": "src-plain"}), 201)
    forwarding = data(
        api.post("/links", json={"url": "https://example.com/f?a=1", "custom_slug": "src-fwd", "forward_query": True}),
        201,
    )
    for _ in range(3):
        assert edge.get("/src-plain?qr=1", headers=BROWSER).headers["location"] == "https://example.com/p"
    assert edge.get("/src-plain", headers=BROWSER).headers["location"] == "https://example.com/p"
    forwarded = edge.get("/src-fwd?qr=1&campaign=x", headers=BROWSER).headers["location"]
    assert forwarded == "https://example.com/f?a=1&campaign=x"
    roll_up(env)
    sources = data(api.get(f"/links/{plain['id']}/stats"))["breakdowns"]["source"]
    assert sources == [{"value": "qr", "clicks": 3}, {"value": "direct", "clicks": 1}]
    assert data(api.get(f"/links/{forwarding['id']}/stats"))["breakdowns"]["source"] == [{"value": "qr", "clicks": 1}]
