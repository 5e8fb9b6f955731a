"""Page analytics end to end: edge hits → event stream → roll-up → stats endpoints.

The first test drives the real edge app and the analytics roll-up (``workers.rollup.Rollup``);
the others push events in the edge's encoding with chosen timestamps, then roll them up.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from starlette.testclient import TestClient

from kit.postgres import create_pool
from redirector.events import EVENT_FIELD, VIEW, Event, encode_batch, encode_event
from redirector.keys import event_stream_key
from tests.api.support import Api, data, sync_link
from tests.support import sql
from workers.rollup import Rollup
from workers.settings import Settings as WorkerSettings

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/12{}.0.0.0 Safari/537.36"


def roll_up(env: dict[str, str], events: list[Event] = ()) -> int:
    """Push ``events`` as the edge would (one stream entry per flush), then run the roll-up once."""

    async def go() -> int:
        settings = WorkerSettings.from_env({**env, "WORKER_METRICS_PORT": "0"})
        pool = await create_pool(env["DATABASE_URL"], min_size=0)
        redis = Redis.from_url(env["REDIS_URL"])
        try:
            if events:
                payload = encode_batch(encode_event(e) for e in events)
                await redis.xadd(event_stream_key(env["KEY_PREFIX"], 0), {EVENT_FIELD: payload})
            return await Rollup(settings, pool, redis).drain()
        finally:
            await redis.aclose()
            await pool.close()

    return asyncio.run(go())


def test_counters_after_known_visits_through_the_edge(api: Api, env: dict[str, str]) -> None:
    from redirector.app import create_app as create_edge
    from redirector.settings import Settings as EdgeSettings

    link_id = api.add_link("promo9", "https://dest.example/promo")
    sync_link(env, "promo9")
    page = data(
        api.post(
            "/bio-pages",
            json={
                "handle": "counted",
                "blocks": [
                    {"type": "link", "label": "Direct", "url": "https://direct.example"},
                    {"type": "link", "label": "Tracked", "link_id": link_id},
                    {"type": "form", "label": "Join"},
                ],
            },
        ),
        201,
    )
    direct, tracked, form = (b["id"] for b in page["blocks"])
    data(api.patch(f"/bio-pages/{page['id']}", json={"is_published": True}))

    with TestClient(create_edge(EdgeSettings.from_env(env)), base_url="http://sho.rt", follow_redirects=False) as e:
        for i in (0, 1, 2, 0, 1):  # 5 views by 3 visitors
            assert e.get("/@counted", headers={"user-agent": CHROME.format(i)}).status_code == 200
        assert e.get("/@counted", headers={"user-agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}).is_success
        assert e.get("/@counted", headers={"user-agent": CHROME.format(0), "sec-purpose": "prefetch"}).is_success
        for _ in range(3):
            assert e.get(f"/@counted/b/{direct}", headers={"user-agent": CHROME.format(0)}).status_code == 302
        for i in range(2):
            assert e.get(f"/@counted/b/{tracked}", headers={"user-agent": CHROME.format(i)}).status_code == 302
        posted = e.post(
            f"/@counted/f/{form}", data={"email": "fan@example.com"}, headers={"user-agent": CHROME.format(1)}
        )
        assert posted.status_code == 303
    # Leaving the edge flushed its buffer to the streams.
    assert roll_up(env) > 0

    counters = data(api.get(f"/bio-pages/{page['id']}/stats/counters"))
    assert (counters["views"], counters["visitors"], counters["clicks"]) == (5, 3, 5)
    assert {b["id"]: b["clicks"] for b in counters["blocks"]} == {direct: 3, tracked: 2, form: 0}
    assert (counters["views_last_7_days"], counters["views_all_time"]) == (5, 5)
    shown = data(api.get(f"/bio/pages/{page['id']}"))
    assert (shown["view_count"], shown["click_count"]) == (5, 5)
    # The tracked block shares its short link's click history.
    link_clicks = sql(api.database_url, "SELECT clicks FROM stats_totals WHERE subject_id = $1", uuid.UUID(link_id))
    assert link_clicks[0]["clicks"] == 2

    series = data(api.get(f"/bio-pages/{page['id']}/stats/views?interval=hour"))
    assert (series["views"], series["visitors"]) == (5, 3)
    assert sum(b["views"] for b in series["series"]) == 5

    submissions = api.get(f"/bio-pages/{page['id']}/submissions")
    rows = data(submissions)
    assert [(r["block_id"], r["data"]) for r in rows] == [(form, {"email": "fan@example.com"})]
    assert submissions.json()["meta"]["next_cursor"] is None

    # Renaming the handle keeps the history: analytics key on the page id.
    data(api.patch(f"/bio-pages/{page['id']}", json={"handle": "renamed"}))
    assert data(api.get(f"/bio-pages/{page['id']}/stats/counters"))["views"] == 5


def view(page_id: str, team_id: str, at: datetime, visitor: str, bot: bool = False) -> Event:
    return Event(VIEW, int(at.timestamp() * 1000), team_id, page_id=page_id, visitor=visitor, bot=bot)


def test_views_are_bucketed_in_the_callers_time_zone(api: Api, env: dict[str, str]) -> None:
    page = data(api.post("/bio-pages", json={"handle": "tz"}), 201)
    ny = ZoneInfo("America/New_York")
    day = (datetime.now(ny) - timedelta(days=3)).date()
    midnight = datetime.combine(day, time(), ny)  # 04:00 or 05:00 UTC: the same UTC day on both sides
    a, b = secrets.token_hex(8), secrets.token_hex(8)
    team = str(api.team_id)
    events = [
        view(page["id"], team, midnight - timedelta(minutes=30), a),
        view(page["id"], team, midnight - timedelta(minutes=20), b),
        view(page["id"], team, midnight + timedelta(minutes=10), a),
        view(page["id"], team, midnight + timedelta(minutes=40), a),
        view(page["id"], team, midnight + timedelta(minutes=50), a),
        view(page["id"], team, midnight + timedelta(minutes=55), b, bot=True),
    ]
    roll_up(env, events)
    start, end = (day - timedelta(days=1)).isoformat(), (day + timedelta(days=1)).isoformat()

    local = data(api.get(f"/bio-pages/{page['id']}/stats/views?from={start}&to={end}&tz=America/New_York"))
    assert [(s["local"][:10], s["views"], s["visitors"]) for s in local["series"]] == [
        ((day - timedelta(days=1)).isoformat(), 2, 2),
        (day.isoformat(), 3, 1),
        ((day + timedelta(days=1)).isoformat(), 0, 0),  # a date-only `to` includes that day
    ]
    assert (local["views"], local["visitors"]) == (5, 2)

    utc = data(api.get(f"/bio-pages/{page['id']}/stats/views?from={start}&to={end}&tz=UTC"))
    assert [(s["start"][:10], s["views"]) for s in utc["series"] if s["views"]] == [(day.isoformat(), 5)]

    window = f"from={midnight.isoformat()}&to={(midnight + timedelta(hours=2)).isoformat()}"
    hourly = data(api.get(f"/bio-pages/{page['id']}/stats/views?interval=hour&tz=America/New_York&{window}"))
    assert [s["views"] for s in hourly["series"]] == [3, 0]
    weekly = data(api.get(f"/bio-pages/{page['id']}/stats/views?interval=week&tz=America/New_York"))
    assert sum(s["views"] for s in weekly["series"]) == 5 and all(
        datetime.fromisoformat(s["local"]).weekday() == 0 for s in weekly["series"]
    )

    counters = data(api.get(f"/bio-pages/{page['id']}/stats/counters?from={day}&tz=America/New_York"))
    assert (counters["views"], counters["visitors"]) == (3, 1)


def test_windows_are_clamped_to_the_plan_retention(make_api, env: dict[str, str]) -> None:
    free = make_api("small", plan="free")  # 30 days of history
    page = data(free.post("/bio-pages", json={"handle": "old"}), 201)
    now = datetime.now(UTC)
    team = str(free.team_id)
    events = [
        view(page["id"], team, now - timedelta(days=40), secrets.token_hex(8)),
        view(page["id"], team, now - timedelta(days=10), secrets.token_hex(8)),
        view(page["id"], team, now - timedelta(hours=2), secrets.token_hex(8)),
    ]
    roll_up(env, events)
    long_ago = (now - timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    counters = data(free.get(f"/bio-pages/{page['id']}/stats/counters?from={long_ago}"))
    assert (counters["views"], counters["views_last_7_days"], counters["views_all_time"]) == (2, 1, 3)
    assert datetime.fromisoformat(counters["from"]) >= now - timedelta(days=30, minutes=1)
    views = data(free.get(f"/bio-pages/{page['id']}/stats/views?from={long_ago}&interval=week"))
    assert views["views"] == 2

    bad = free.get(f"/bio-pages/{page['id']}/stats/views?tz=Mars/Olympus")
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "tz"
    bad = free.get(f"/bio-pages/{page['id']}/stats/views?interval=minute")
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "interval"
    bad = free.get(f"/bio-pages/{page['id']}/stats/counters?from=yesterday")
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "from"


def test_submissions_are_paginated_newest_first(api: Api) -> None:
    page = data(api.post("/bio-pages", json={"handle": "forms", "blocks": [{"type": "form"}]}), 201)
    form = uuid.UUID(page["blocks"][0]["id"])
    for i in range(5):
        sql(
            api.database_url,
            "INSERT INTO form_submissions (team_id, page_id, block_id, data, created_at) "
            "VALUES ($1, $2, $3, $4::text::jsonb, now() - make_interval(mins => $5))",
            api.team_id,
            uuid.UUID(page["id"]),
            form,
            f'{{"email": "n{i}@example.com"}}',
            i,
        )
    emails, cursor = [], None
    while True:
        response = api.get(f"/bio-pages/{page['id']}/submissions", params={"per_page": 2, "cursor": cursor or ""})
        emails += [row["data"]["email"] for row in data(response)]
        cursor = response.json()["meta"]["next_cursor"]
        if cursor is None:
            break
    assert emails == [f"n{i}@example.com" for i in range(5)]
