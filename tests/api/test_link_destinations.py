"""link_destinations: every URL a link can send visitors to, written by each links write in the
same transaction, under the edge's destination id (redirector.events.destination_id)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from api.links import io as links_io
from redirector.events import destination_id
from tests.api.support import Api, data

SPLIT = {"split": [{"url": "https://a.example/x", "weight": 70}, {"url": "https://b.example/y", "weight": 30}]}
RULE = {"url": "https://acme.com/ca", "conditions": {"country": ["CA"]}}


def destinations(db: Callable[..., list[Any]], link_id: str) -> dict[str, str]:
    rows = db("SELECT destination_id, url FROM link_destinations WHERE link_id = $1", uuid.UUID(link_id))
    return {r["destination_id"]: r["url"] for r in rows}


def ids(*urls: str) -> dict[str, str]:
    return {destination_id(u): u for u in urls}


def test_the_id_is_what_postgresql_computes(db) -> None:
    url = "https://example.com/ünïcode?q=1"
    [row] = db("SELECT left(encode(sha256(convert_to($1, 'UTF8')), 'hex'), 12) AS id", url)
    assert row["id"] == destination_id(url) == hashlib.sha256(url.encode()).hexdigest()[:12]


def test_create_then_patch_keeps_every_destination(api: Api, db) -> None:
    link = data(api.post("/links", json={"url": "https://example.com/one", "routing_rules": [RULE, SPLIT]}), 201)
    first = ids("https://example.com/one", "https://acme.com/ca", "https://a.example/x", "https://b.example/y")
    assert destinations(db, link["id"]) == first

    data(api.patch(f"/links/{link['id']}", json={"url": "https://example.com/two"}))
    assert destinations(db, link["id"]) == {**first, **ids("https://example.com/two")}
    data(
        api.patch(
            f"/links/{link['id']}",
            json={"routing_rules": [{"url": "https://acme.com/fr", "conditions": {"language": ["fr"]}}]},
        )
    )
    assert destinations(db, link["id"]) == {**first, **ids("https://example.com/two", "https://acme.com/fr")}

    # A change that touches no URL writes nothing new; a known URL keeps its first sighting.
    before = db("SELECT destination_id, first_seen_at FROM link_destinations WHERE link_id = $1", uuid.UUID(link["id"]))
    data(api.patch(f"/links/{link['id']}", json={"title": "renamed", "url": "https://example.com/one"}))
    after = db("SELECT destination_id, first_seen_at FROM link_destinations WHERE link_id = $1", uuid.UUID(link["id"]))
    assert sorted(map(tuple, after)) == sorted(map(tuple, before))


def test_the_default_is_the_url_sent_with_its_utm_fields(api: Api, db) -> None:
    body = {"url": "https://example.com/p", "utm": {"source": "news"}}
    link = data(api.post("/links", json=body), 201)
    assert link["destination"] == "https://example.com/p?utm_source=news"
    assert destinations(db, link["id"]) == ids("https://example.com/p?utm_source=news")
    data(api.patch(f"/links/{link['id']}", json={"utm": {"source": "ads"}}))
    assert destinations(db, link["id"]) == ids(
        "https://example.com/p?utm_source=news", "https://example.com/p?utm_source=ads"
    )


def test_bulk_create_writes_them_for_created_items_only(api: Api, db) -> None:
    body = {
        "links": [
            {"url": "https://example.com/b1", "routing_rules": [SPLIT]},
            {"url": "javascript:alert(1)"},
            {"url": "https://example.com/b2", "custom_slug": "bulk-dest"},
            {"url": "https://example.com/b3", "custom_slug": "bulk-dest"},  # a conflict: rolled back
        ]
    }
    result = data(api.post("/links/bulk", json=body), 201)
    assert [e["index"] for e in result["errors"]] == [1, 3]
    one, two = (c["id"] for c in result["created"])
    assert destinations(db, one) == ids("https://example.com/b1", "https://a.example/x", "https://b.example/y")
    assert destinations(db, two) == ids("https://example.com/b2")
    assert db("SELECT count(*) AS n FROM link_destinations")[0]["n"] == 4


async def test_import_writes_them(ctx) -> None:
    settings, pool, redis, team = ctx
    rows = [{"url": "https://example.com/i1", "routing_rules": [RULE]}, {"destination": "https://example.com/i2"}]
    assert (await links_io.import_links(pool, redis, settings, team, rows)).created == 2
    found = await pool.fetch(
        "SELECT l.url AS link, d.url FROM link_destinations d JOIN links l ON l.id = d.link_id WHERE l.team_id = $1",
        team,
    )
    assert sorted((r["link"], r["url"]) for r in found) == [
        ("https://example.com/i1", "https://acme.com/ca"),
        ("https://example.com/i1", "https://example.com/i1"),
        ("https://example.com/i2", "https://example.com/i2"),
    ]


def test_each_link_has_its_own_and_another_team_sees_none(make_api, db) -> None:
    acme, globex = make_api("acme"), make_api("globex")
    mine = data(acme.post("/links", json={"url": "https://shared.example/", "routing_rules": [SPLIT]}), 201)
    theirs = data(globex.post("/links", json={"url": "https://shared.example/"}), 201)
    assert destinations(db, mine["id"]) == ids("https://shared.example/", "https://a.example/x", "https://b.example/y")
    assert destinations(db, theirs["id"]) == ids("https://shared.example/")
    # The URLs are only shown in a link's stats, which are another team's 404.
    assert globex.get(f"/links/{mine['id']}/stats").status_code == 404
    assert globex.get(f"/links/{mine['id']}/stats/variants").status_code == 404
    breakdowns = data(globex.get(f"/links/{theirs['id']}/stats"))["breakdowns"]
    assert breakdowns["destination"] == [] and breakdowns["variant"] == []


def test_a_patch_also_records_the_urls_it_replaces(api: Api, db) -> None:
    # As for a link written before link_destinations existed (migration 007 backfills links.url,
    # which is not the URL sent when the link has UTM fields).
    link = data(api.post("/links", json={"url": "https://example.com/u", "utm": {"campaign": "c"}}), 201)
    db("DELETE FROM link_destinations WHERE link_id = $1", uuid.UUID(link["id"]))
    data(api.patch(f"/links/{link['id']}", json={"url": "https://example.com/v"}))
    assert destinations(db, link["id"]) == ids(
        "https://example.com/u?utm_campaign=c", "https://example.com/v?utm_campaign=c"
    )
