"""Create and update requests for both bio page shapes (``/bio/pages`` and ``/bio-pages``), sent as raw
bytes exactly as a client writes them, and every field their responses carry.

Where a body holds a placeholder id (``01J…``), the request is sent as written first (a 422 naming
the field, as for any invalid value) and then again with the placeholder replaced by a real id.
"""

from __future__ import annotations

import json
import re
import uuid

from tests.api.support import Api, data, error_fields

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

XQR_CREATE = """{ "title": "Acme Inc", "description": "Official links and resources", "page_data": { "theme": "dark", "avatar_url": "https://cdn.xqr.co/avatars/acme.png", "links": [ { "label": "Website", "url": "https://acme.com" }, { "label": "Twitter", "url": "https://twitter.com/acme" }, { "label": "GitHub", "url": "https://github.com/acme" } ] } }"""  # noqa: E501
XQR_UPDATE = """{ "title": "Acme Inc - Updated", "page_data": { "theme": "light", "avatar_url": "https://cdn.xqr.co/avatars/acme-v2.png", "links": [ { "label": "Website", "url": "https://acme.com" }, { "label": "Blog", "url": "https://blog.acme.com" }, { "label": "Twitter", "url": "https://twitter.com/acme" }, { "label": "GitHub", "url": "https://github.com/acme" } ] } }"""  # noqa: E501
FORMSPRING_CREATE = """{
  "handle": "acme",
  "display_name": "Acme Co.",
  "headline": "Everything Acme, one link.",
  "bio": "Product updates, support, and the latest drop.",
  "theme": { "palette": "midnight", "accent": "#4f46e5", "button_style": "pill" },
  "seo": { "title": "Acme", "description": "All of Acme in one place." },
  "blocks": [
    { "type": "header", "label": "Start here", "sort_order": 0 },
    { "type": "link", "label": "Latest drop", "url": "https://acme.example/new", "sort_order": 1 },
    { "type": "link", "label": "Tracked promo", "link_id": "01J…", "sort_order": 2 },
    { "type": "social", "icon": "instagram", "url": "https://instagram.com/acme", "sort_order": 3 }
  ]
}"""
FORMSPRING_UPDATE = """{
  "headline": "New season, same link.",
  "is_published": true,
  "blocks": [
    { "id": "01J…", "type": "link", "label": "Shop", "url": "https://acme.example/shop", "sort_order": 0 }
  ]
}"""
JSON = {"Content-Type": "application/json"}


def send(api: Api, method: str, path: str, body: str):
    return api.request(method, path, content=body.encode(), headers=JSON)


def test_xqr_create_page(api: Api) -> None:
    page = data(send(api, "POST", "/bio/pages", XQR_CREATE), 201)

    uuid.UUID(page["id"])
    assert page["title"] == "Acme Inc"
    assert page["description"] == "Official links and resources"
    assert page["slug"] == "acme-inc"
    assert page["page_data"] == json.loads(XQR_CREATE)["page_data"]
    assert page["is_published"] is False and page["published_at"] is None
    assert page["view_count"] == 0 and page["click_count"] == 0
    assert page["html_url"] == "http://bio.test/acme-inc"
    assert RFC3339.match(page["created_at"]) and RFC3339.match(page["updated_at"])
    assert set(page) == {"id", "title", "description", "slug", "page_data", "is_published", "published_at",
                         "view_count", "click_count", "html_url", "created_at", "updated_at"}  # fmt: skip

    again = data(send(api, "POST", "/bio/pages", XQR_CREATE), 201)
    assert again["slug"] == "acme-inc-2"
    assert again["html_url"] == "http://bio.test/acme-inc-2"


def test_xqr_update_page(api: Api, cache) -> None:
    page = data(send(api, "POST", "/bio/pages", XQR_CREATE), 201)
    published = data(api.post(f"/bio/pages/{page['id']}/publish"))
    assert published["is_published"] is True and RFC3339.match(published["published_at"])

    updated = data(send(api, "PATCH", f"/bio/pages/{page['id']}", XQR_UPDATE))

    assert updated["id"] == page["id"]
    assert updated["title"] == "Acme Inc - Updated"
    assert updated["description"] == "Official links and resources"
    assert updated["slug"] == "acme-inc"
    assert updated["page_data"] == json.loads(XQR_UPDATE)["page_data"]
    assert updated["is_published"] is True and updated["published_at"] == published["published_at"]
    assert updated["html_url"] == "http://bio.test/acme-inc"
    assert updated["created_at"] == page["created_at"] and RFC3339.match(updated["updated_at"])
    # A change to a published page shows on its public URL at once.
    record = cache("acme-inc")
    assert record is not None and b"Acme Inc - Updated" in record.html and b"blog.acme.com" not in record.html
    assert "https://blog.acme.com" in record.blocks.values()
    # Unchanged links kept their blocks (and so their click history).
    shown = data(api.get(f"/bio-pages/{page['id']}"))
    assert [b["label"] for b in shown["blocks"]] == ["Website", "Blog", "Twitter", "GitHub"]


def test_formspring_create_show_search_list(api: Api) -> None:
    verbatim = send(api, "POST", "/bio-pages", FORMSPRING_CREATE)
    assert error_fields(verbatim) == ["blocks[2].link_id"]

    link_id = api.add_link("promo1")
    page = data(send(api, "POST", "/bio-pages", FORMSPRING_CREATE.replace("01J…", link_id)), 201)
    assert page["handle"] == "acme"
    assert (page["display_name"], page["headline"]) == ("Acme Co.", "Everything Acme, one link.")
    assert page["bio"] == "Product updates, support, and the latest drop."
    assert page["theme"] | {"palette": "midnight", "accent": "#4f46e5", "button_style": "pill"} == page["theme"]
    assert page["seo"] == {"title": "Acme", "description": "All of Acme in one place."}
    assert page["is_published"] is False and page["published_at"] is None
    blocks = page["blocks"]
    assert [(b["type"], b["label"], b["sort_order"]) for b in blocks] == [
        ("header", "Start here", 0),
        ("link", "Latest drop", 1),
        ("link", "Tracked promo", 2),
        ("social", "", 3),
    ]
    assert blocks[1]["url"] == "https://acme.example/new" and blocks[2]["link_id"] == link_id
    assert blocks[3]["icon"] == "instagram" and blocks[3]["url"] == "https://instagram.com/acme"
    assert all(b["is_active"] is True and b["config"] == {} for b in blocks)

    shown = data(api.get(f"/bio-pages/{page['id']}"))
    assert [b["id"] for b in shown["blocks"]] == [b["id"] for b in blocks]

    found = data(api.get("/bio-pages/search?q=acme"))
    assert found == [
        {"id": page["id"], "handle": "acme", "display_name": "Acme Co.", "headline": "Everything Acme, one link."}
    ]

    listed = api.get("/bio-pages?per_page=25&search=acme")
    rows = data(listed)
    assert [r["id"] for r in rows] == [page["id"]] and rows[0]["blocks_count"] == 4
    assert listed.json()["meta"]["next_cursor"] is None


def test_formspring_update_and_delete(api: Api, cache) -> None:
    page = data(
        send(api, "POST", "/bio-pages", FORMSPRING_CREATE.replace('"link_id": "01J…"', '"url": "https://a.example"')),
        201,
    )
    assert error_fields(send(api, "PATCH", f"/bio-pages/{page['id']}", FORMSPRING_UPDATE)) == ["blocks[0].id"]

    keep = page["blocks"][1]["id"]
    updated = data(send(api, "PATCH", f"/bio-pages/{page['id']}", FORMSPRING_UPDATE.replace("01J…", keep)))
    assert updated["headline"] == "New season, same link."
    assert updated["is_published"] is True and RFC3339.match(updated["published_at"])
    assert [(b["id"], b["label"], b["url"], b["sort_order"]) for b in updated["blocks"]] == [
        (keep, "Shop", "https://acme.example/shop", 0)
    ]
    assert cache("acme") is not None

    deleted = api.delete(f"/bio-pages/{page['id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert deleted.json()["data"] == {"deleted": True}
    assert cache("acme") is None
    assert api.get(f"/bio-pages/{page['id']}").status_code == 404


def test_formspring_stats_endpoints(api: Api) -> None:
    page = data(api.post("/bio-pages", json={"handle": "acme"}), 201)
    counters = data(api.get(f"/bio-pages/{page['id']}/stats/counters"))
    assert {k: counters[k] for k in ("views", "visitors", "clicks", "views_last_7_days", "views_all_time")} == {
        "views": 0, "visitors": 0, "clicks": 0, "views_last_7_days": 0, "views_all_time": 0
    }  # fmt: skip
    assert counters["blocks"] == []
    views = data(api.get(f"/bio-pages/{page['id']}/stats/views?interval=day&tz=UTC"))
    assert views["views"] == 0 and len(views["series"]) in (30, 31)
