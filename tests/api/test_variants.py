"""GET /api/v1/links/{id}/stats/variants: clicks per split variant over the window, against the
configured weights, with the sample-ratio-mismatch flag."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import Redis

from redirector.events import CLICK, EVENT_FIELD, Event, encode_batch, encode_event
from redirector.keys import event_stream_key
from tests.api.support import Api, data, roll_up

FIFTY = {"split": [{"url": "https://a.example/", "weight": 50}, {"url": "https://b.example/", "weight": 50}]}
CANADA = {"url": "https://acme.com/ca", "conditions": {"country": ["CA"]}}


def push(env: dict[str, str], events: list[Event]) -> None:
    """Append events as edges do (500 lines a stream entry, over the shards), then roll them up."""
    redis = Redis.from_url(env["REDIS_URL"])
    try:
        lines = [encode_event(e) for e in events]
        for n, i in enumerate(range(0, len(lines), 500)):
            key = event_stream_key(env["KEY_PREFIX"], n % 8)
            redis.xadd(key, {EVENT_FIELD: encode_batch(lines[i : i + 500])})
    finally:
        redis.close()
    roll_up(env, settle=0)


def clicks(api: Api, link_id: str, variant: str, n: int, *, hours_ago: float = 1, bot: bool = False) -> list[Event]:
    ts = int((datetime.now(UTC) - timedelta(hours=hours_ago)).timestamp() * 1000)
    rule = variant.partition(".")[0]
    team = str(api.team_id)
    return [Event(CLICK, ts, team, link_id=link_id, rule=rule, variant=variant, bot=bot) for _ in range(n)]


def new_link(api: Api, rules: list[dict[str, Any]]) -> str:
    link: dict[str, Any] = data(api.post("/links", json={"url": "https://example.com/ab", "routing_rules": rules}), 201)
    return str(link["id"])


def test_a_split_fed_90_10_against_50_50_weights_is_a_mismatch(api: Api, env: dict[str, str]) -> None:
    link = new_link(api, [CANADA, FIFTY])
    push(env, clicks(api, link, "1.0", 900) + clicks(api, link, "1.1", 100) + clicks(api, link, "1.1", 50, bot=True))
    response = api.get(f"/links/{link}/stats/variants")
    body = data(response)
    assert set(response.json()["meta"]) >= {"complete_through", "pending_events", "pending_exact"}
    assert body["link_id"] == link and body["tz"] == "UTC"
    [rule] = body["rules"]
    assert (rule["rule"], rule["conditions"], rule["clicks"], rule["other_clicks"]) == (1, {}, 1000, 0)
    assert rule["variants"] == [
        {
            "variant": 0,
            "value": "1.0",
            "url": "https://a.example/",
            "weight": 50,
            "clicks": 900,
            "share": 0.9,
            "expected_clicks": 500.0,
        },
        {
            "variant": 1,
            "value": "1.1",
            "url": "https://b.example/",
            "weight": 50,
            "clicks": 100,
            "share": 0.1,
            "expected_clicks": 500.0,
        },
    ]
    srm = rule["srm"]
    assert srm["statistic"] == pytest.approx(640.0)
    assert (srm["test"], srm["df"], srm["alpha"], srm["mismatch"], srm["reason"]) == (
        "chi_square",
        1,
        0.001,
        True,
        None,
    )
    assert srm["p_value"] < 1e-100


def test_a_fair_split_is_not_a_mismatch(api: Api, env: dict[str, str]) -> None:
    link = new_link(api, [FIFTY])
    push(env, clicks(api, link, "0.0", 5003) + clicks(api, link, "0.1", 4997))
    [rule] = data(api.get(f"/links/{link}/stats/variants"))["rules"]
    assert [(v["clicks"], v["share"]) for v in rule["variants"]] == [(5003, 0.5003), (4997, 0.4997)]
    assert rule["clicks"] == 10000
    assert rule["srm"]["statistic"] == pytest.approx(0.0036)
    assert rule["srm"]["p_value"] == pytest.approx(math.erfc(math.sqrt(0.0018)))
    assert rule["srm"]["mismatch"] is False


def test_several_splits_the_window_and_too_few_clicks(api: Api, env: dict[str, str]) -> None:
    three = {
        "split": [
            {"url": "https://x.example/", "weight": 70},
            {"url": "https://y.example/", "weight": 20},
            {"url": "https://z.example/", "weight": 10},
        ],
        "conditions": {"device": ["mobile"]},
    }
    link = new_link(api, [three, CANADA, FIFTY])
    events = clicks(api, link, "0.0", 14) + clicks(api, link, "0.1", 4) + clicks(api, link, "0.2", 2)
    events += clicks(api, link, "0.3", 7)  # a variant the rule does not have (any more)
    events += clicks(api, link, "2.0", 3, hours_ago=50)  # outside a 24-hour window
    push(env, events)

    first, last = data(api.get(f"/links/{link}/stats/variants"))["rules"]
    assert (first["rule"], first["conditions"], first["clicks"], first["other_clicks"]) == (
        0,
        {"device": ["mobile"]},
        20,
        7,
    )
    assert [v["clicks"] for v in first["variants"]] == [14, 4, 2]
    assert [v["expected_clicks"] for v in first["variants"]] == pytest.approx([14.0, 4.0, 2.0])
    assert first["srm"]["df"] == 2 and first["srm"]["statistic"] == pytest.approx(0.0)
    assert first["srm"]["mismatch"] is None
    assert first["srm"]["reason"].startswith("too few clicks: variant 2 expects 2.00")
    assert (last["rule"], last["clicks"], [v["clicks"] for v in last["variants"]]) == (2, 3, [3, 0])

    since = (datetime.now(UTC) - timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = data(api.get(f"/links/{link}/stats/variants", params={"from": since}))
    assert [r["clicks"] for r in recent["rules"]] == [20, 0]
    empty = recent["rules"][1]["srm"]
    assert (empty["statistic"], empty["p_value"], empty["mismatch"]) == (None, None, None)
    assert empty["reason"] == "no clicks in the window"
    assert [v["share"] for v in recent["rules"][1]["variants"]] == [None, None]


def test_a_link_without_a_split_has_no_results(api: Api) -> None:
    assert data(api.get(f"/links/{new_link(api, [CANADA])}/stats/variants"))["rules"] == []
    assert data(api.get(f"/links/{new_link(api, [])}/stats/variants"))["rules"] == []


def test_another_teams_link_is_404_and_the_ability_is_required(make_api) -> None:
    acme = make_api("acme")
    link = new_link(acme, [FIFTY])
    url = f"/links/{link}/stats/variants"
    assert make_api("globex").get(url).status_code == 404
    assert acme.get("/links/not-a-uuid/stats/variants").status_code == 404
    reader = acme.with_abilities("links:read")
    denied = reader.get(url)
    assert denied.status_code == 403 and "links:analytics:read" in denied.json()["error"]["message"]
    assert acme.with_abilities("links:analytics:read").get(url).status_code == 200
    bad = acme.get(url, params={"tz": "Mars/Olympus"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "tz"


def test_the_route_is_in_the_openapi_document(api: Api) -> None:
    document = api.client.get("/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/links/{link_id}/stats/variants"]["get"]
    assert {"200", "401", "403", "404", "422"} <= set(operation["responses"])
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schemas = document["components"]["schemas"]
    envelope = schemas[ref.rsplit("/", 1)[1]]
    data_schema = schemas[envelope["properties"]["data"]["$ref"].rsplit("/", 1)[1]]
    assert set(data_schema["properties"]) == {"link_id", "from", "to", "tz", "rules"}
    assert "mismatch" in schemas["SrmOut"]["properties"]
