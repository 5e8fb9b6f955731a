"""Bio page breakdowns (GET /bio-pages/{id}/stats/breakdowns) and per-block clicks over time
(GET /bio-pages/{id}/stats/blocks): exact counts from rolled-up events, teams and abilities."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from redirector.events import BLOCK_CLICK, CLICK, VIEW, Event
from tests.api.support import Api, data
from tests.api.test_variants import push

PAGE_DIMENSIONS = {
    *("country", "device", "os", "browser", "referrer", "source", "utm_source", "utm_medium", "utm_campaign"),
    *("region", "city", "network", "domain"),
}


def new_page(api: Api, handle: str) -> dict[str, Any]:
    link = data(api.post("/links", json={"url": "https://example.com/tracked"}), 201)
    body = {
        "handle": handle,
        "blocks": [
            {"type": "link", "label": "Shop", "url": "https://shop.example", "sort_order": 0},
            {"type": "link", "label": "Tracked", "link_id": link["id"], "sort_order": 1},
            {"type": "text", "label": "About", "sort_order": 2},
        ],
    }
    page: dict[str, Any] = data(api.post("/bio-pages", json=body), 201)
    page["link_id"] = link["id"]
    return page


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_page_breakdowns_count_human_views(api: Api, env: dict[str, str], db) -> None:
    page = new_page(api, "brk")
    domain = uuid.uuid4()
    db("INSERT INTO domains (id, team_id, hostname, challenge_token) VALUES ($1, $2, 'bio.acme.test', 'x')", domain,
       api.team_id)  # fmt: skip
    ts, team, pid = ms(datetime.now(UTC) - timedelta(hours=3)), str(api.team_id), page["id"]

    def views(n: int, **fields: Any) -> list[Event]:
        return [Event(VIEW, ts, team, page_id=pid, **fields) for _ in range(n)]

    events = views(4, country="DE", device="mobile", os="ios", referrer="t.co", region="DE|Berlin",
                   city="DE|Berlin|Berlin", domain_id=str(domain), utm_source="insta")  # fmt: skip
    events += views(2, country="FR", device="desktop", browser="firefox", network="datacenter")
    events += views(1, country="DE", source="qr")
    events += views(5, country="US", bot=True)  # bots are not views
    events += [Event(BLOCK_CLICK, ts, team, page_id=pid, block_id=page["blocks"][0]["id"], country="US")]
    push(env, events)

    body = data(api.get(f"/bio-pages/{pid}/stats/breakdowns"))
    assert body["views"] == 7 and body["tz"] == "UTC"
    tops = body["breakdowns"]
    assert set(tops) == PAGE_DIMENSIONS
    assert tops["country"] == [{"value": "DE", "views": 5}, {"value": "FR", "views": 2}]
    assert tops["device"] == [{"value": "mobile", "views": 4}, {"value": "desktop", "views": 2},
                              {"value": "(unknown)", "views": 1}]  # fmt: skip
    assert tops["os"] == [{"value": "ios", "views": 4}, {"value": "(unknown)", "views": 3}]
    assert tops["browser"] == [{"value": "(unknown)", "views": 5}, {"value": "firefox", "views": 2}]
    assert tops["referrer"] == [{"value": "t.co", "views": 4}, {"value": "(direct)", "views": 3}]
    assert tops["source"] == [{"value": "(unknown)", "views": 6}, {"value": "qr", "views": 1}]
    assert tops["utm_source"] == [{"value": "insta", "views": 4}]
    assert tops["region"] == [{"value": "DE|Berlin", "views": 4, "country": "DE", "region": "Berlin"}]
    assert tops["city"] == [
        {"value": "DE|Berlin|Berlin", "views": 4, "country": "DE", "region": "Berlin", "city": "Berlin"}
    ]
    assert tops["network"] == [{"value": "datacenter", "views": 2}]
    assert tops["domain"] == [{"value": str(domain), "views": 4, "hostname": "bio.acme.test"}]

    # The window: nothing before the views' hour.
    later = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    empty = data(api.get(f"/bio-pages/{pid}/stats/breakdowns", params={"from": later}))
    assert empty["views"] == 0 and all(rows == [] for rows in empty["breakdowns"].values())


def test_block_clicks_over_time(api: Api, env: dict[str, str]) -> None:
    page = new_page(api, "blk")
    shop, tracked, about = (b["id"] for b in page["blocks"])
    team, pid = str(api.team_id), page["id"]
    day = (datetime.now(UTC) - timedelta(days=3)).date()
    noon = datetime.combine(day, time(12), UTC)

    def block_clicks(block: str, at: datetime, visitors: list[str]) -> list[Event]:
        return [Event(BLOCK_CLICK, ms(at), team, page_id=pid, block_id=block, visitor=v) for v in visitors]

    events = block_clicks(shop, noon, ["a", "b", "a"])
    events += block_clicks(shop, noon + timedelta(days=1), ["c"])
    # A tracked block's click is a click of its short link, through the page and the block.
    events += [
        Event(CLICK, ms(noon + timedelta(days=2)), team, link_id=page["link_id"], page_id=pid, block_id=tracked,
              source="bio", visitor=v)
        for v in ("a", "d")
    ]  # fmt: skip
    events += [Event(BLOCK_CLICK, ms(noon), team, page_id=pid, block_id=shop, visitor="bot", bot=True)]
    push(env, events)

    start, end = day.isoformat(), (day + timedelta(days=2)).isoformat()
    response = api.get(f"/bio-pages/{pid}/stats/blocks", params={"from": start, "to": end, "interval": "day"})
    body = data(response)
    assert set(response.json()["meta"]) >= {"complete_through", "pending_events", "pending_exact"}
    assert (body["interval"], body["clicks"]) == ("day", 6)
    assert [(b["id"], b["label"], b["clicks"], b["visitors"]) for b in body["blocks"]] == [
        (shop, "Shop", 4, 3),
        (tracked, "Tracked", 2, 2),
        (about, "About", 0, 0),
    ]
    days = [(day + timedelta(days=i)).isoformat() for i in range(3)]
    for block, expected in zip(body["blocks"], ([2 + 1, 1, 0], [0, 0, 2], [0, 0, 0]), strict=True):
        assert [s["start"][:10] for s in block["series"]] == days
        assert [s["clicks"] for s in block["series"]] == expected
    assert [s["visitors"] for s in body["blocks"][0]["series"]] == [2, 1, 0]

    # Buckets in the caller's zone: noon UTC is still the same day in Tokyo (21:00), a week bucket holds it all.
    tokyo = data(api.get(f"/bio-pages/{pid}/stats/blocks", params={"from": start, "to": end, "tz": "Asia/Tokyo"}))
    assert [s["clicks"] for s in tokyo["blocks"][0]["series"]] == [3, 1, 0]
    assert tokyo["blocks"][0]["series"][0]["local"] == f"{day.isoformat()}T00:00:00+09:00"
    weekly = data(api.get(f"/bio-pages/{pid}/stats/blocks", params={"from": start, "to": end, "interval": "week"}))
    assert sum(s["clicks"] for b in weekly["blocks"] for s in b["series"]) == 6
    hourly = data(api.get(f"/bio-pages/{pid}/stats/blocks", params={"interval": "hour"}))
    assert len(hourly["blocks"][0]["series"]) == 24 and hourly["clicks"] == 0  # the default: the last 24 hours

    # The page's counters agree.
    counters = data(api.get(f"/bio-pages/{pid}/stats/counters"))
    assert {b["id"]: b["clicks"] for b in counters["blocks"]} == {shop: 4, tracked: 2, about: 0}


def test_another_team_and_the_ability(make_api) -> None:
    acme = make_api("acme")
    page = new_page(acme, "mine")
    globex = make_api("globex")
    reader = acme.with_abilities("bio:read")
    for route in ("breakdowns", "blocks"):
        url = f"/bio-pages/{page['id']}/stats/{route}"
        assert globex.get(url).status_code == 404
        assert acme.get(f"/bio-pages/{uuid.uuid4()}/stats/{route}").status_code == 404
        assert acme.get(f"/bio-pages/not-a-uuid/stats/{route}").status_code == 404
        denied = reader.get(url)
        assert denied.status_code == 403 and "bio:analytics:read" in denied.json()["error"]["message"]
        assert acme.with_abilities("bio:analytics:read").get(url).status_code == 200
        bad = acme.get(url, params={"tz": "Mars/Olympus"})
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "tz"
    bad = acme.get(f"/bio-pages/{page['id']}/stats/blocks", params={"interval": "minute"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "interval"
