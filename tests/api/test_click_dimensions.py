"""Clicks through the real edge, rolled up by the real worker: each rule, split variant, destination,
source and UTM tag lands in its own breakdown row of PostgreSQL, with exact counts; lines of event
version 1 still count."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import redis
from fastapi.testclient import TestClient

from redirector.events import EVENT_FIELD, RULE_NONE, destination_id
from redirector.keys import event_stream_key
from redirector.visitor import split_cookie_name
from tests.api.support import Api, data, roll_up
from tests.support import sql

BROWSER = {"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"}
A, B, C = "https://a.example/", "https://b.example/?utm_source=split&utm_medium=ab", "https://c.example/"
DEFAULT = "https://default.example/?utm_source=news&utm_campaign=fall"


def breakdown(api: Api, link_id: str) -> dict[str, Counter[str]]:
    rows = sql(
        api.database_url,
        "SELECT dimension, value, sum(clicks)::bigint AS n FROM stats_breakdown_hourly "
        "WHERE subject_id = $1 GROUP BY 1, 2",
        uuid.UUID(link_id),
    )
    out: dict[str, Counter[str]] = {}
    for r in rows:
        out.setdefault(r["dimension"], Counter())[r["value"]] = r["n"]
    return out


def test_rules_variants_destinations_sources_and_utm_land_in_their_rows(
    api: Api, edge: TestClient, env: dict[str, str]
) -> None:
    rules = [
        {"url": A, "conditions": {"query": {"r": "a"}}},
        {"split": [{"url": B, "weight": 50}, {"url": C, "weight": 50}], "conditions": {"query": {"r": "s"}}},
    ]
    link = data(api.post("/links", json={"url": DEFAULT, "custom_slug": "dims", "routing_rules": rules}), 201)
    cookie = split_cookie_name(link["id"])
    first, second = {**BROWSER, "cookie": f"{cookie}=10"}, {**BROWSER, "cookie": f"{cookie}=90"}
    hits = [("/dims?r=a", BROWSER)] * 2 + [("/dims?r=s", first)] * 3 + [("/dims?r=s", second)] * 4
    hits += [("/dims", BROWSER)] * 5 + [("/dims?qr=1", BROWSER)] * 6
    for path, headers in hits:
        assert edge.get(path, headers=headers).status_code == 302
    page = data(
        api.post("/bio-pages", json={"handle": "dims-page", "blocks": [{"type": "link", "link_id": link["id"]}]}),
        201,
    )
    data(api.patch(f"/bio-pages/{page['id']}", json={"is_published": True}))
    block = page["blocks"][0]["id"]
    for _ in range(7):
        assert edge.get(f"/@dims-page/b/{block}", headers=BROWSER).status_code == 302
    roll_up(env)

    got = breakdown(api, link["id"])
    assert got["rule"] == {"0": 2, "1": 7, RULE_NONE: 18}
    assert got["variant"] == {"1.0": 3, "1.1": 4}
    assert got["destination"] == {
        destination_id(A): 2,
        destination_id(B): 3,
        destination_id(C): 4,
        destination_id(DEFAULT): 18,
    }
    assert got["source"] == {"direct": 14, "qr": 6, "bio": 7}
    assert got["utm_source"] == {"split": 3, "news": 18}
    assert got["utm_medium"] == {"ab": 3}
    assert got["utm_campaign"] == {"fall": 18}
    # no city, ASN or team domain here: nothing rolled up for them (sparse dimensions)
    assert not {"region", "city", "network", "domain"} & set(got)
    # every destination a breakdown names is a URL the API recorded for the link
    named = sql(
        api.database_url, "SELECT destination_id, url FROM link_destinations WHERE link_id = $1", uuid.UUID(link["id"])
    )
    assert set(got["destination"]) <= {r["destination_id"] for r in named}


def test_version_1_lines_still_count(api: Api, env: dict[str, str]) -> None:
    link = data(api.post("/links", json={"url": "https://example.com/", "custom_slug": "old-edge"}), 201)
    now = int(time.time() * 1000)
    team = str(api.team_id)
    v1 = [f"1\tc\t{now}\t{team}\t{link['id']}\t\t\tDE\tmobile\tios\tsafari\t\tvisitor-{i}\t0\tqr\t\t" for i in range(3)]
    r = redis.Redis.from_url(env["REDIS_URL"])
    try:
        r.xadd(event_stream_key(env["KEY_PREFIX"], 0), {EVENT_FIELD: "\n".join(v1).encode()})
    finally:
        r.close()
    roll_up(env, settle=0)
    stats = data(api.get(f"/links/{link['id']}/stats"))
    assert stats["totals"]["clicks"] == 3 and stats["totals"]["unique_visitors"] == 3
    got = breakdown(api, link["id"])
    assert got["country"] == {"DE": 3} and got["source"] == {"qr": 3}
    assert "destination" not in got  # version 1 did not say
