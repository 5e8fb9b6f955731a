"""GET /api/v1/links/{id}/stats: counters the roll-up wrote, bucketed in the caller's time zone."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from redis.asyncio import Redis

from api.settings import Settings
from kit.postgres import create_pool
from redirector.events import CLICK, EVENT_FIELD, Event, encode_batch, encode_event
from redirector.keys import event_stream_key
from tests.api.conftest import TeamKey
from workers.rollup import Rollup
from workers.settings import Settings as WorkerSettings

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def ingest(run: Run, settings: Settings, events: Sequence[Event]) -> None:
    """Append events as the edge does and let one roll-up drain them."""

    async def go() -> None:
        redis = Redis.from_url(settings.redis_url)
        pg = await create_pool(settings.database_url, min_size=0, max_size=2)
        try:
            lines = [encode_event(e) for e in events]
            for i in range(0, len(lines), 100):
                await redis.xadd(
                    event_stream_key(settings.key_prefix, i % 8), {EVENT_FIELD: encode_batch(lines[i : i + 100])}
                )
            worker = WorkerSettings(database_url=settings.database_url, redis_url=settings.redis_url)
            worker = WorkerSettings(**{**worker.__dict__, "key_prefix": settings.key_prefix, "metrics_port": 0})
            await Rollup(worker, pg, redis).drain()
        finally:
            await pg.close()
            await redis.aclose()

    run(go())


def new_link(client: TestClient, key: TeamKey) -> dict[str, Any]:
    response = client.post("/api/v1/links", json={"url": "https://example.com/stats"}, headers=key.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def visitor(n: int) -> str:
    return hashlib.blake2b(b"%d" % n, digest_size=8).hexdigest()


def at(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_link_stats_totals_series_and_breakdowns(
    client: TestClient, make_key: Callable[..., TeamKey], settings: Settings, run: Run
) -> None:
    key = make_key("acme", "pro")
    link = new_link(client, key)
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=2)
    team = str(key.team_id)
    events = [
        Event(
            CLICK,
            at(now),
            team,
            link_id=link["id"],
            country="DE",
            device="mobile",
            os="ios",
            browser="safari",
            referrer="t.co",
            visitor=visitor(i % 7),
        )
        for i in range(30)
    ]
    events += [Event(CLICK, at(now), team, link_id=link["id"], country="US", device="desktop", visitor=visitor(100))]
    events += [Event(CLICK, at(now), team, link_id=link["id"], bot=True, visitor=visitor(200)) for _ in range(4)]
    ingest(run, settings, events)

    response = client.get(f"/api/v1/links/{link['id']}/stats?interval=hour&tz=Europe/Berlin", headers=key.headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["totals"] == {"clicks": 31, "unique_visitors": 8, "bots": 4}
    assert data["all_time"]["clicks"] == 31
    assert len(data["series"]) == 24
    busy = [b for b in data["series"] if b["clicks"]]
    assert busy == [{"start": busy[0]["start"], "clicks": 31, "unique_visitors": 8, "bots": 4}]
    assert busy[0]["start"].endswith(("+01:00", "+02:00"))
    assert data["breakdowns"]["country"] == [{"value": "DE", "clicks": 30}, {"value": "US", "clicks": 1}]
    assert data["breakdowns"]["referrer"] == [{"value": "t.co", "clicks": 30}, {"value": "(direct)", "clicks": 1}]
    assert data["breakdowns"]["device"][0] == {"value": "mobile", "clicks": 30}
    # The link resource shows the same count.
    assert client.get(f"/api/v1/links/{link['id']}", headers=key.headers).json()["data"]["scan_count"] == 31


def test_day_buckets_follow_dst_in_new_york(
    client: TestClient, make_key: Callable[..., TeamKey], settings: Settings, run: Run
) -> None:
    key = make_key("nyc", "business")
    link = new_link(client, key)
    # One click at every UTC hour from Oct 31 00:00 EDT to Nov 3 00:00 EST.
    first, last = datetime(2026, 10, 31, 4, tzinfo=UTC), datetime(2026, 11, 3, 5, tzinfo=UTC)
    hours = int((last - first) / timedelta(hours=1))
    events = [Event(CLICK, at(first + timedelta(hours=h)), str(key.team_id), link_id=link["id"]) for h in range(hours)]
    ingest(run, settings, events)

    url = f"/api/v1/links/{link['id']}/stats"
    query = {"from": "2026-10-31", "to": "2026-11-02", "tz": "America/New_York", "interval": "day"}
    data = client.get(url, params=query, headers=key.headers).json()["data"]
    assert [(b["start"], b["clicks"]) for b in data["series"]] == [
        ("2026-10-31T00:00:00-04:00", 24),
        ("2026-11-01T00:00:00-04:00", 25),  # the clocks go back: a 25-hour day
        ("2026-11-02T00:00:00-05:00", 24),
    ]
    assert data["from"] == "2026-10-31T04:00:00Z" and data["to"] == "2026-11-03T05:00:00Z"

    query.update({"from": "2026-11-01", "to": "2026-11-01", "interval": "hour"})
    data = client.get(url, params=query, headers=key.headers).json()["data"]
    starts = [b["start"] for b in data["series"]]
    assert len(starts) == 25 and all(b["clicks"] == 1 for b in data["series"])
    assert starts[1:3] == ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"]

    query.update({"from": "2026-10-31", "to": "2026-11-02", "interval": "week"})
    data = client.get(url, params=query, headers=key.headers).json()["data"]
    assert [(b["start"], b["clicks"]) for b in data["series"]] == [
        ("2026-10-26T00:00:00-04:00", 49),  # Monday; only Oct 31 and Nov 1 (24 + 25 h) are in the window
        ("2026-11-02T00:00:00-05:00", 24),
    ]


def test_stats_are_clamped_to_the_plan_retention(
    client: TestClient, make_key: Callable[..., TeamKey], settings: Settings, run: Run
) -> None:
    key = make_key("small", "free")
    link = new_link(client, key)
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=40), now - timedelta(days=2)
    team = str(key.team_id)
    ingest(
        run,
        settings,
        [Event(CLICK, at(old), team, link_id=link["id"]), Event(CLICK, at(recent), team, link_id=link["id"])],
    )

    start = (now - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = client.get(f"/api/v1/links/{link['id']}/stats", params={"from": start}, headers=key.headers)
    data = response.json()["data"]
    assert data["totals"]["clicks"] == 1
    assert data["all_time"]["clicks"] == 2
    clamped = datetime.fromisoformat(data["from"])
    assert timedelta(days=29) < now - clamped <= timedelta(days=30, hours=1)


def test_stats_errors(client: TestClient, make_key: Callable[..., TeamKey]) -> None:
    key = make_key("acme", "pro")
    link = new_link(client, key)
    url = f"/api/v1/links/{link['id']}/stats"
    for params, field in [
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"interval": "month"}, "interval"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "from"),
    ]:
        response = client.get(url, params=params, headers=key.headers)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["details"][0]["field"] == field
    other = make_key("globex", "pro")
    assert client.get(url, headers=other.headers).status_code == 404
    reader = make_key("acme", "pro", abilities="links:read")
    assert client.get(url, headers=reader.headers).status_code == 403
    assert client.get("/api/v1/links/not-a-uuid/stats", headers=key.headers).status_code == 404
