"""GET /api/v1/links/{id}/stats: the breakdowns of event version 2 (rule, variant, destination, UTM,
region, city, network, domain), labelled with what their stored values mean."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from redirector.events import CLICK, Event, destination_id
from tests.api.support import Api, data
from tests.api.test_variants import push

FIFTY = {"split": [{"url": "https://a.example/", "weight": 50}, {"url": "https://b.example/", "weight": 50}]}
CANADA = {"url": "https://acme.com/ca", "conditions": {"country": ["CA"]}}


def test_new_dimensions_are_labelled(api: Api, env: dict[str, str], db) -> None:
    link = data(api.post("/links", json={"url": "https://example.com/old", "routing_rules": [CANADA, FIFTY]}), 201)
    data(api.patch(f"/links/{link['id']}", json={"url": "https://example.com/new"}))
    domain = uuid.uuid4()
    db(
        "INSERT INTO domains (id, team_id, hostname, challenge_token) VALUES ($1, $2, 'go.acme.test', 'x')",
        domain,
        api.team_id,
    )
    ts = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)

    def click(n: int, **fields: Any) -> list[Event]:
        return [Event(CLICK, ts, str(api.team_id), link_id=link["id"], **fields) for _ in range(n)]

    old, new = destination_id("https://example.com/old"), destination_id("https://example.com/new")
    a, b, ca = (destination_id(u) for u in ("https://a.example/", "https://b.example/", "https://acme.com/ca"))
    events = click(3, rule="none", destination=old, region="US|California", city="US|California|San Francisco")
    events += click(2, rule="none", destination=new, region="DE|Berlin", city="DE|Berlin|Berlin", domain_id=str(domain))
    events += click(4, rule="0", destination=ca, utm_source="news", network="datacenter", country="CA")
    events += click(5, rule="1", variant="1.0", destination=a, network="other")
    events += click(1, rule="1", variant="1.1", destination=b, domain_id="not-a-domain")
    events += click(1, rule="7", variant="7.0", destination="ffffffffffff")
    push(env, events)

    breakdowns = data(api.get(f"/links/{link['id']}/stats"))["breakdowns"]
    assert breakdowns["rule"] == [
        {"value": "1", "clicks": 6, "rule": 1, "default": False, "split": True, "url": None},
        {"value": "none", "clicks": 5, "rule": None, "default": True, "split": False, "url": "https://example.com/new"},
        {"value": "0", "clicks": 4, "rule": 0, "default": False, "split": False, "url": "https://acme.com/ca"},
        {"value": "7", "clicks": 1, "rule": 7, "default": False, "split": None, "url": None},
    ]
    assert breakdowns["variant"] == [
        {"value": "1.0", "clicks": 5, "rule": 1, "variant": 0, "url": "https://a.example/", "weight": 50},
        {"value": "1.1", "clicks": 1, "rule": 1, "variant": 1, "url": "https://b.example/", "weight": 50},
        {"value": "7.0", "clicks": 1, "rule": 7, "variant": 0, "url": None, "weight": None},  # no such rule now
    ]
    assert breakdowns["destination"] == [
        {"value": a, "clicks": 5, "url": "https://a.example/"},
        {"value": ca, "clicks": 4, "url": "https://acme.com/ca"},
        {"value": old, "clicks": 3, "url": "https://example.com/old"},  # a URL the link had: from link_destinations
        {"value": new, "clicks": 2, "url": "https://example.com/new"},
        {"value": b, "clicks": 1, "url": "https://b.example/"},
        {"value": "ffffffffffff", "clicks": 1, "url": None},
    ]
    assert breakdowns["region"] == [
        {"value": "US|California", "clicks": 3, "country": "US", "region": "California"},
        {"value": "DE|Berlin", "clicks": 2, "country": "DE", "region": "Berlin"},
    ]
    assert breakdowns["city"] == [
        {"value": "US|California|San Francisco", "clicks": 3, "country": "US", "region": "California",
         "city": "San Francisco"},
        {"value": "DE|Berlin|Berlin", "clicks": 2, "country": "DE", "region": "Berlin", "city": "Berlin"},
    ]  # fmt: skip
    assert breakdowns["domain"] == [
        {"value": str(domain), "clicks": 2, "hostname": "go.acme.test"},
        {"value": "not-a-domain", "clicks": 1, "hostname": None},
    ]
    assert breakdowns["utm_source"] == [{"value": "news", "clicks": 4}]
    assert breakdowns["utm_medium"] == breakdowns["utm_campaign"] == []
    assert breakdowns["network"] == [{"value": "other", "clicks": 5}, {"value": "datacenter", "clicks": 4}]
    # The dimensions that were there before keep their shape.
    assert breakdowns["country"] == [{"value": "(unknown)", "clicks": 12}, {"value": "CA", "clicks": 4}]
    assert breakdowns["source"] == [{"value": "(unknown)", "clicks": 16}]
    assert breakdowns["referrer"] == [{"value": "(direct)", "clicks": 16}]


def test_another_teams_domain_is_not_named(make_api, env: dict[str, str], db) -> None:
    acme, globex = make_api("acme"), make_api("globex")
    theirs = uuid.uuid4()
    db("INSERT INTO domains (id, team_id, hostname, challenge_token) VALUES ($1, $2, 'globex.test', 'x')", theirs,
       globex.team_id)  # fmt: skip
    link = data(acme.post("/links", json={"url": "https://example.com/d"}), 201)
    ts = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    push(env, [Event(CLICK, ts, str(acme.team_id), link_id=link["id"], domain_id=str(theirs))])
    assert data(acme.get(f"/links/{link['id']}/stats"))["breakdowns"]["domain"] == [
        {"value": str(theirs), "clicks": 1, "hostname": None}
    ]
