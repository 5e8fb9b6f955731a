"""GET /links (cursor pagination, label and search filters) and GET /links/{id}/qr."""

from __future__ import annotations

import io
import struct
import xml.etree.ElementTree as ET
import zlib

import pytest
import segno


def bulk(client, key, links):
    r = client.post("/api/v1/links/bulk", json={"links": links}, headers=key.headers)
    assert r.status_code == 201 and not r.json()["data"]["errors"], r.text
    return r.json()["data"]["created"]


def all_pages(client, key, **params):
    """Follow next_cursor to the end; returns (pages of short codes, per-page metas)."""
    pages, metas, cursor = [], [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = client.get("/api/v1/links", params=query, headers=key.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append([link["short_code"] for link in body["data"]])
        metas.append(body["meta"])
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return pages, metas


def test_list_is_newest_first_with_cursor(client, make_key) -> None:
    key = make_key()
    codes = [c["short_code"] for c in bulk(client, key, [{"url": f"https://e.com/{i}"} for i in range(12)])]
    codes += [c["short_code"] for c in bulk(client, key, [{"url": "https://e.com/late", "custom_slug": "late"}])]
    pages, metas = all_pages(client, key, per_page=5)
    assert [len(p) for p in pages] == [5, 5, 3]
    assert [code for page in pages for code in page] == codes[::-1]
    assert all(m["next_cursor"] for m in metas[:-1]) and metas[-1]["next_cursor"] is None
    assert all(m["request_id"].startswith("req_") and "rate_limit" in m for m in metas)


def test_list_default_page_size_and_empty(client, make_key) -> None:
    key = make_key()
    r = client.get("/api/v1/links", headers=key.headers)
    assert r.status_code == 200
    assert r.json()["data"] == [] and r.json()["meta"]["next_cursor"] is None
    bulk(client, key, [{"url": f"https://e.com/{i}"} for i in range(26)])
    body = client.get("/api/v1/links", headers=key.headers).json()
    assert len(body["data"]) == 25 and body["meta"]["next_cursor"]


def test_list_filters_by_label_and_search(client, make_key) -> None:
    key = make_key()
    items = [{"url": f"https://shop.example/{i}", "labels": ["spring"] if i % 2 else ["autumn"]} for i in range(9)]
    items += [
        {"url": "https://other.example/a", "custom_slug": "Shop-Promo", "labels": ["spring", "print"]},
        {"url": "https://other.example/b", "title": "Big SHOP day", "labels": ["print"]},
        {"url": "https://other.example/c", "title": "100%_done"},
    ]
    created = bulk(client, key, items)
    spring = [c["short_code"] for c in created if "spring" in c["labels"]]
    pages, _ = all_pages(client, key, label="spring", per_page=2)
    assert [c for p in pages for c in p] == spring[::-1] and len(spring) == 5
    pages, _ = all_pages(client, key, label=["spring", "print"], per_page=2)
    assert pages == [["Shop-Promo"]]
    pages, _ = all_pages(client, key, search="shop", per_page=4)
    assert len([c for p in pages for c in p]) == 11  # 9 by URL, one by code, one by title
    pages, _ = all_pages(client, key, search="shop", label="print")
    assert len(pages[0]) == 2
    pages, _ = all_pages(client, key, search="0%_")
    assert len(pages[0]) == 1  # % and _ are literal characters, not wildcards
    pages, _ = all_pages(client, key, search="", label="", per_page=100)
    assert len(pages[0]) == 12  # empty filters filter nothing
    pages, _ = all_pages(client, key, search="nothing-matches")
    assert pages == [[]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"per_page": 0}, "per_page"),
        ({"per_page": 101}, "per_page"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"search": "nul\x00"}, "search"),
        ({"search": "x" * 201}, "search"),
        ({"label": "nul\x00"}, "label"),
    ],
)
def test_list_bad_params_are_422(client, make_key, params, field) -> None:
    r = client.get("/api/v1/links", params=params, headers=make_key().headers)
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["error"]["details"]] == [field]


def test_list_shows_only_own_team(client, make_key) -> None:
    a, b = make_key("a"), make_key("b")
    bulk(client, a, [{"url": "https://e.com/a"}])
    assert client.get("/api/v1/links", headers=b.headers).json()["data"] == []


def png_pixels(data: bytes) -> list[list[int]]:
    """Rows of a 1-bit grayscale PNG (1 = white), chunk CRCs checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (1, 0)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), (width + 7) // 8 + 1
    rows = [raw[y * stride : (y + 1) * stride] for y in range(height)]
    assert all(row[0] == 0 for row in rows)  # filter type none
    return [[(row[1 + x // 8] >> (7 - x % 8)) & 1 for x in range(width)] for row in rows]


def test_qr_svg_and_png(client, make_key) -> None:
    key = make_key()
    [link] = bulk(client, key, [{"url": "https://e.com/q", "custom_slug": "qr-me"}])
    r = client.get(f"/api/v1/links/{link['id']}/qr", headers=key.headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert r.headers["x-request-id"].startswith("req_") and "x-ratelimit-remaining" in r.headers
    svg = ET.parse(io.BytesIO(r.content)).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg" and float(svg.get("width")) == 300
    r = client.get(f"/api/v1/links/{link['id']}/qr", params={"format": "svg", "size": 512}, headers=key.headers)
    assert float(ET.parse(io.BytesIO(r.content)).getroot().get("width")) == 512

    r = client.get(f"/api/v1/links/{link['id']}/qr", params={"format": "png", "size": 400}, headers=key.headers)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert 'filename="qr-me.png"' in r.headers["content-disposition"]
    pixels = png_pixels(r.content)
    assert len(pixels) == 400 and {len(row) for row in pixels} == {400}  # exactly the size asked for
    # Every module of the QR symbol of the short URL with its scan marker (?qr=1), sampled at its
    # centre, is in the image, centred.
    matrix = segno.make(link["short_url"] + "?qr=1", error="m").matrix
    n = len(matrix)
    scale = 400 // (n + 8)
    offset = (400 - n * scale) // 2
    assert offset >= 4 * scale  # at least the standard quiet zone
    centre = offset + scale // 2
    assert [[pixels[centre + y * scale][centre + x * scale] for x in range(n)] for y in range(n)] == [
        [0 if dark else 1 for dark in row] for row in matrix
    ]
    assert all(v == 1 for v in pixels[0] + pixels[-1] + [row[0] for row in pixels])  # white margins


@pytest.mark.parametrize(
    ("params", "field"),
    [({"format": "gif"}, "format"), ({"size": 10}, "size"), ({"size": 5000}, "size"), ({"size": "big"}, "size")],
)
def test_qr_bad_params_are_422(client, make_key, params, field) -> None:
    key = make_key()
    [link] = bulk(client, key, [{"url": "https://e.com/q"}])
    r = client.get(f"/api/v1/links/{link['id']}/qr", params=params, headers=key.headers)
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["error"]["details"]] == [field]


def test_qr_of_unknown_link_is_404(client, make_key) -> None:
    key = make_key()
    assert client.get("/api/v1/links/nope/qr", headers=key.headers).status_code == 404
    r = client.get("/api/v1/links/00000000-0000-4000-8000-000000000000/qr", headers=key.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
