"""GET /api/v1/analytics: team-wide clicks from the summary tables, on real Redis and PostgreSQL.

Events go into the streams as the edge writes them and are rolled up by a real worker pass
(``roll_up``); every expected count is computed from the same event list.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from api.settings import Settings
from redirector.events import BATCH_ID_FIELD, BLOCK_CLICK, CLICK, EVENT_FIELD, VIEW, Event, encode_batch, encode_event
from redirector.keys import event_stream_key
from tests.api.support import Api, data, error_fields, roll_up

NOW = datetime.now(UTC)
DAY0 = (NOW - timedelta(days=5)).replace(hour=0, minute=0, second=0, microsecond=0)  # a UTC midnight
WINDOW = {"from": f"{DAY0:%Y-%m-%dT%H:%M:%SZ}", "to": f"{DAY0 + timedelta(days=2):%Y-%m-%dT%H:%M:%SZ}"}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def push(sync_redis: redis.Redis, settings: Settings, events: Iterable[Event]) -> None:
    lines = [encode_event(e) for e in events]
    for n, i in enumerate(range(0, len(lines), 50)):
        sync_redis.xadd(
            event_stream_key(settings.key_prefix, n % settings.event_shards),
            {EVENT_FIELD: encode_batch(lines[i : i + 50]), BATCH_ID_FIELD: uuid.uuid4().hex},
        )


class World:
    """A team's links (two labelled, one on a team domain), a bio page, and the clicks of all of them."""

    def __init__(self, api: Api, db: Callable[..., Any]) -> None:
        self.api, self.team = api, str(api.team_id)
        self.domain = str(uuid.uuid4())
        db(
            "INSERT INTO domains (id, team_id, hostname, challenge_token, verified_at) "
            "VALUES ($1, $2, 'go.acme.test', 't', now())",
            self.domain,
            api.team_id,
        )
        self.links: dict[str, str] = {}  # code -> id
        for code, labels, domain in (
            ("promo", ["sale", "q4"], None),
            ("blog", ["q4"], None),
            ("shop", [], self.domain),
            ("quiet", [], None),
        ):
            link = str(uuid.uuid4())
            db(
                "INSERT INTO links (id, team_id, code, url, destination, labels, domain_id) "
                "VALUES ($1, $2, $3, $4, $4, $5, $6)",
                link,
                api.team_id,
                code,
                f"https://example.com/{code}",
                labels,
                domain,
            )
            self.links[code] = link
        self.page = data(api.post("/bio-pages", json={"handle": "acme-bio"}), 201)["id"]
        self.events: list[Event] = []

    def click(self, code: str, at: datetime, n: int = 1, **fields: Any) -> None:
        for i in range(n):
            self.events.append(
                Event(
                    CLICK, ms(at) + i, self.team, link_id=self.links[code], visitor=f"{len(self.events):016x}", **fields
                )
            )

    def standard(self) -> None:
        """The clicks most tests read: over two UTC days, several countries and sources."""
        d = DAY0
        self.click("promo", d + timedelta(hours=2), 5, country="US", source="qr", region="US|California")
        self.click("promo", d + timedelta(hours=23), 3, country="DE", source="direct", city="DE|Berlin|Berlin")
        self.click(
            "promo", d + timedelta(days=1, hours=3), 2, country="US", source="direct", destination="0123456789ab"
        )
        self.click("blog", d + timedelta(hours=4), 4, country="FR", source="direct")
        self.click("blog", d + timedelta(days=1, hours=22), 1, country="", source="bio")
        self.click("shop", d + timedelta(days=1, hours=1), 6, country="US", source="direct", domain_id=self.domain)
        self.events.append(Event(CLICK, ms(d + timedelta(hours=5)), self.team, link_id=self.links["promo"], bot=True))
        self.click("promo", d - timedelta(hours=1), 7, country="US")  # before the window
        self.click("promo", d + timedelta(days=2), 8, country="US")  # at its end (exclusive)
        for i in range(9):
            self.events.append(Event(VIEW, ms(d + timedelta(hours=6)) + i, self.team, page_id=self.page, country="US"))
        for i in range(2):
            block = str(uuid.uuid4())
            self.events.append(
                Event(BLOCK_CLICK, ms(d + timedelta(hours=7)) + i, self.team, page_id=self.page, block_id=block)
            )

    def inside(self) -> list[Event]:
        end = DAY0 + timedelta(days=2)
        return [e for e in self.events if ms(DAY0) <= e.ts_ms < ms(end) and e.kind == CLICK and not e.bot]


@pytest.fixture
def world(api: Api, db: Callable[..., Any], sync_redis: redis.Redis, settings: Settings, env: dict[str, str]) -> World:
    w = World(api, db)
    w.standard()
    push(sync_redis, settings, w.events)
    roll_up(env, settle=0)
    return w


def get(api: Api, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = data(api.get("/analytics", params={**WINDOW, **params}))
    return body


def clicks_by(rows: list[dict[str, Any]], key: str = "value") -> dict[Any, int]:
    return {r[key]: r["clicks"] for r in rows}


def test_group_by_link_counts_each_link_and_labels_it(world: World, api: Api) -> None:
    body = get(api, group_by="link")
    links = world.links
    assert [(r["value"], r["clicks"]) for r in body["rows"]] == [
        (links["promo"], 10),
        (links["shop"], 6),
        (links["blog"], 5),
    ]
    assert body["totals"] == {"clicks": 21}
    assert body["more"] is False and body["limit"] == 100
    promo, shop = body["rows"][0], body["rows"][1]
    assert promo == {
        "value": links["promo"],
        "short_code": "promo",
        "domain": "sho.rt",
        "short_url": "http://sho.rt/promo",
        "url": "https://example.com/promo",
        "clicks": 10,
    }
    assert shop["domain"] == "go.acme.test" and shop["short_url"] == "https://go.acme.test/shop"
    assert (body["from"], body["to"], body["interval"], body["group_by"]) == (
        WINDOW["from"],
        WINDOW["to"],
        "none",
        "link",
    )
    limited = get(api, group_by="link", limit=2)
    assert [r["clicks"] for r in limited["rows"]] == [10, 6] and limited["more"] is True
    assert limited["totals"] == {"clicks": 21}  # totals count every link, shown or not


def test_group_by_each_dimension_counts_exactly(world: World, api: Api) -> None:
    inside = world.inside()
    for dimension, field in (("country", "country"), ("source", "source"), ("region", "region"), ("city", "city")):
        want = Counter(getattr(e, field) for e in inside)
        if dimension in ("region", "city"):
            want.pop("", None)  # sparse dimensions: no row for clicks without a value
        rows = get(api, group_by=dimension)["rows"]
        got = {("" if r["value"] == "(unknown)" else r["value"]): r["clicks"] for r in rows}
        assert got == dict(want), dimension
        assert [r["clicks"] for r in rows] == sorted((r["clicks"] for r in rows), reverse=True)
    country = get(api, group_by="country")
    assert country["rows"] == [
        {"value": "US", "clicks": 13},
        {"value": "FR", "clicks": 4},
        {"value": "DE", "clicks": 3},
        {"value": "(unknown)", "clicks": 1},
    ]
    assert country["totals"] == {"clicks": 21}
    assert get(api, group_by="region")["rows"] == [
        {"value": "US|California", "country": "US", "region": "California", "clicks": 5}
    ]
    assert get(api, group_by="city")["rows"] == [
        {"value": "DE|Berlin|Berlin", "country": "DE", "region": "Berlin", "city": "Berlin", "clicks": 3}
    ]
    assert get(api, group_by="domain")["rows"] == [{"value": world.domain, "hostname": "go.acme.test", "clicks": 6}]


def test_destination_rows_name_the_url_from_link_destinations(world: World, api: Api, db: Callable[..., Any]) -> None:
    db(
        "INSERT INTO link_destinations (link_id, destination_id, url) VALUES ($1, '0123456789ab', 'https://example.com/b')",
        world.links["promo"],
    )
    assert get(api, group_by="destination")["rows"] == [
        {"value": "0123456789ab", "url": "https://example.com/b", "clicks": 2}
    ]


def test_group_by_page_counts_views_and_block_clicks(world: World, api: Api) -> None:
    body = get(api, group_by="page")
    assert body["rows"] == [{"value": world.page, "handle": "acme-bio", "views": 9, "clicks": 2}]
    assert body["totals"] == {"clicks": 2, "views": 9}


def test_intervals_bucket_in_the_time_zone(world: World, api: Api) -> None:
    inside = world.inside()
    # UTC days: whole days of the daily tables.
    assert get(api, interval="day")["rows"] == [
        {"start": f"{DAY0:%Y-%m-%dT00:00:00Z}", "clicks": 12},
        {"start": f"{DAY0 + timedelta(days=1):%Y-%m-%dT00:00:00Z}", "clicks": 9},
    ]
    # New York days cut the UTC days: the edge hours come from the hourly tables.
    ny = ZoneInfo("America/New_York")
    want = Counter(datetime.fromtimestamp(e.ts_ms / 1000, ny).date() for e in inside)
    rows = get(api, interval="day", tz="America/New_York")["rows"]
    first = DAY0.astimezone(ny).date()
    last = (DAY0 + timedelta(days=2) - timedelta(microseconds=1)).astimezone(ny).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    assert [r["start"][:10] for r in rows] == [f"{d:%Y-%m-%d}" for d in days]
    assert [r["clicks"] for r in rows] == [want[d] for d in days]
    assert rows[0]["start"].endswith(("-04:00", "-05:00"))
    # Hours: every hour of the window, zeros included.
    hours = get(api, interval="hour")["rows"]
    assert len(hours) == 48 and sum(r["clicks"] for r in hours) == 21
    assert hours[2] == {"start": f"{DAY0:%Y-%m-%d}T02:00:00Z", "clicks": 5}
    # Months: local calendar months over the default window (12 months up to now).
    months = data(api.get("/analytics", params={"interval": "month", "tz": "Asia/Kolkata"}))
    ist = ZoneInfo("Asia/Kolkata")
    recent = [e for e in world.events if e.kind == CLICK and not e.bot]
    want_months = Counter(datetime.fromtimestamp(e.ts_ms / 1000, ist).strftime("%Y-%m") for e in recent)
    got_months = {r["start"][:7]: r["clicks"] for r in months["rows"] if r["clicks"]}
    assert got_months == dict(want_months)
    assert all(r["start"][8:] == "01T00:00:00+05:30" for r in months["rows"][1:])
    assert months["rows"][-1]["start"][:7] == NOW.astimezone(ist).strftime("%Y-%m")
    # A grouped series: per bucket, the top values, most clicks first.
    series = get(api, group_by="country", interval="day")["rows"]
    assert [(r["start"][:10], r["value"], r["clicks"]) for r in series] == [
        (f"{DAY0:%Y-%m-%d}", "US", 5),
        (f"{DAY0:%Y-%m-%d}", "FR", 4),
        (f"{DAY0:%Y-%m-%d}", "DE", 3),
        (f"{DAY0 + timedelta(days=1):%Y-%m-%d}", "US", 8),
        (f"{DAY0 + timedelta(days=1):%Y-%m-%d}", "(unknown)", 1),
    ]


def test_a_window_off_the_utc_days_sums_days_and_edge_hours(world: World, api: Api) -> None:
    start, end = DAY0 + timedelta(hours=3), DAY0 + timedelta(days=1, hours=23)
    params = {"from": f"{start:%Y-%m-%dT%H:%M:%SZ}", "to": f"{end:%Y-%m-%dT%H:%M:%SZ}"}
    inside = [e for e in world.inside() if ms(start) <= e.ts_ms < ms(end)]
    body = data(api.get("/analytics", params={**params, "group_by": "link"}))
    want = Counter(e.link_id for e in inside)
    assert clicks_by(body["rows"]) == dict(want)
    assert data(api.get("/analytics", params=params))["rows"] == [{"clicks": len(inside)}]
    country = data(api.get("/analytics", params={**params, "group_by": "country"}))
    assert {r["value"]: r["clicks"] for r in country["rows"]} == {
        ("(unknown)" if k == "" else k): n for k, n in Counter(e.country for e in inside).items()
    }


def test_a_window_up_to_now_reads_the_unfinished_day_whole(world: World, api: Api) -> None:
    """Without from/to: the last 30 days up to now, today's daily row standing for its hours so far."""
    every = [e for e in world.events if e.kind == CLICK and not e.bot]
    body = data(api.get("/analytics", params={"group_by": "link"}))
    assert body["totals"] == {"clicks": len(every)} == {"clicks": 36}
    today = data(api.get("/analytics", params={"from": f"{NOW:%Y-%m-%d}", "group_by": "country"}))
    assert today["rows"] == [] and today["totals"] == {"clicks": 0}
    hours = data(api.get("/analytics", params={"interval": "hour"}))["rows"]
    assert len(hours) == 24 and sum(r["clicks"] for r in hours) == 0


def test_filters(world: World, api: Api) -> None:
    links, inside = world.links, world.inside()

    def count(pred: Callable[[Event], bool]) -> int:
        return sum(1 for e in inside if pred(e))

    assert get(api, link_id=links["blog"])["rows"] == [{"clicks": 5}]
    assert get(api, label="q4")["totals"]["clicks"] == 15
    assert get(api, label=["q4", "sale"])["totals"]["clicks"] == 10
    assert get(api, domain="go.acme.test")["totals"]["clicks"] == 6
    assert get(api, domain="sho.rt")["totals"]["clicks"] == 15  # the service's own host: links without a domain
    assert get(api, country="us")["rows"] == [{"clicks": 13}]
    assert get(api, country="us")["filters"] == {"country": "US"}
    assert get(api, source="direct")["totals"]["clicks"] == count(lambda e: e.source == "direct")
    assert get(api, country="(unknown)")["totals"]["clicks"] == 1
    # A link filter with a dimension: the per-link breakdowns answer it.
    by_country = get(api, group_by="country", label="q4")["rows"]
    assert by_country == [
        {"value": "US", "clicks": 7},
        {"value": "FR", "clicks": 4},
        {"value": "DE", "clicks": 3},
        {"value": "(unknown)", "clicks": 1},
    ]
    # A dimension filter with links: the same.
    us_links = get(api, group_by="link", country="US")["rows"]
    assert [(r["short_code"], r["clicks"]) for r in us_links] == [("promo", 7), ("shop", 6)]
    assert get(api, link_id=links["promo"], country="US", group_by="country")["rows"] == [{"value": "US", "clicks": 7}]
    assert get(api, group_by="source", source="qr")["rows"] == [{"value": "qr", "clicks": 5}]
    assert get(api, link_id=links["quiet"])["rows"] == [{"clicks": 0}]
    assert get(api, link_id=links["quiet"], group_by="country")["rows"] == []


def test_refused_combinations_name_the_field_and_say_why(world: World, api: Api) -> None:
    def refused(field: str, **params: Any) -> str:
        response = api.get("/analytics", params={**WINDOW, **params})
        assert error_fields(response) == [field], params
        message: str = response.json()["error"]["details"][0]["message"]
        return message

    why = refused("country", country="US", group_by="device")
    assert "rolled up per dimension" in why and "device" in why and "US" in why
    assert "never per pair" in refused("source", country="US", source="qr")
    assert "bio pages" in refused("label", group_by="page", label="q4")
    assert "bio pages" in refused("country", group_by="page", country="US")
    refused("group_by", group_by="planet")
    refused("interval", interval="year")
    refused("limit", limit=0)
    refused("limit", limit=1001)
    refused("domain", domain="elsewhere.test")
    refused("interval", interval="hour", **{"from": "2026-01-01", "to": "2026-12-01"})
    refused("tz", tz="Mars/Olympus")
    assert api.get("/analytics", params={"link_id": "not-a-link"}).status_code == 404


def test_another_teams_data_never_appears(
    world: World,
    api: Api,
    make_api: Callable[..., Api],
    sync_redis: redis.Redis,
    settings: Settings,
    env: dict[str, str],
) -> None:
    other = make_api("globex")
    foreign = other.add_link("foreign")
    events = [
        Event(CLICK, ms(DAY0 + timedelta(hours=9)) + i, str(other.team_id), link_id=foreign, country="JP", source="qr")
        for i in range(40)
    ]
    push(sync_redis, settings, events)
    roll_up(env, settle=0)
    for group in ("none", "link", "country", "source"):
        mine = get(api, group_by=group)
        assert mine["totals"]["clicks"] == 21, group
        assert "JP" not in str(mine["rows"]) and foreign not in str(mine["rows"])
    assert get(other, group_by="country")["rows"] == [{"value": "JP", "clicks": 40}]
    assert get(other, group_by="link")["totals"] == {"clicks": 40}
    # Another team's link is no link of this team: a 404, as for GET /links/{id}/stats.
    assert api.get("/analytics", params={"link_id": foreign}).status_code == 404
    assert other.get("/analytics", params={"link_id": world.links["promo"]}).status_code == 404
    assert get(other, group_by="page")["rows"] == []


def test_abilities(world: World, api: Api) -> None:
    links_only = api.with_abilities("links:analytics:read")
    bio_only = api.with_abilities("bio:analytics:read")
    reader = api.with_abilities("links:read")
    assert links_only.get("/analytics", params={"group_by": "country"}).status_code == 200
    assert links_only.get("/analytics", params={"group_by": "page"}).status_code == 403
    assert bio_only.get("/analytics", params={"group_by": "page"}).status_code == 200
    assert bio_only.get("/analytics", params={"group_by": "link"}).status_code == 403
    assert bio_only.get("/analytics").status_code == 403
    assert reader.get("/analytics").status_code == 403
    assert api.client.get("/api/v1/analytics").status_code == 401


def test_csv_export_holds_the_json_rows(world: World, api: Api) -> None:
    for params in (
        {"group_by": "link"},
        {"group_by": "country", "interval": "day"},
        {"group_by": "city"},
        {"interval": "hour"},
        {"group_by": "page"},
        {"group_by": "variant"},  # no rows: the header alone
    ):
        body = get(api, **params)
        response = api.get("/analytics", params={**WINDOW, **params, "format": "csv"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        disposition = response.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="analytics-') and disposition.endswith('.csv"')
        assert response.headers["x-pending-events"] == "0"
        reader = csv.DictReader(io.StringIO(response.text))
        header = reader.fieldnames or []
        assert header[-1] == "clicks" and ("start" in header) == ("interval" in params)
        as_text = [{k: "" if v is None else str(v) for k, v in row.items()} for row in body["rows"]]
        assert list(reader) == as_text, params
        if body["rows"]:
            assert list(body["rows"][0]) == header


def test_every_response_says_how_fresh_it_is(world: World, api: Api) -> None:
    meta = api.get("/analytics", params={"group_by": "link"}).json()["meta"]
    assert meta["pending_events"] == 0 and meta["pending_exact"] is True
    assert datetime.fromisoformat(meta["complete_through"]) > NOW - timedelta(minutes=1)


def test_the_window_is_clamped_to_the_retention(api: Api, make_api: Callable[..., Api]) -> None:
    free = make_api("tiny", plan="free")
    body = data(free.get("/analytics", params={"from": "2020-01-01", "interval": "month"}))
    assert datetime.fromisoformat(body["from"]) >= NOW - timedelta(days=30, hours=1)
    assert date.fromisoformat(body["rows"][0]["start"][:10]) <= datetime.fromisoformat(body["from"]).date()
    # A window wholly before the retention is empty, not an error.
    for interval in ("none", "day", "month"):
        gone = data(free.get("/analytics", params={"to": "2000-01-01", "interval": interval, "group_by": "link"}))
        assert gone["from"] == gone["to"] and gone["rows"] == [] and gone["totals"] == {"clicks": 0}
    assert data(free.get("/analytics", params={"to": "2000-01-01"}))["rows"] == [{"clicks": 0}]


def test_the_route_is_in_the_openapi_document(api: Api) -> None:
    doc = api.client.get("/api/v1/openapi.json").json()
    operation = doc["paths"]["/api/v1/analytics"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"group_by", "interval", "from", "to", "tz", "link_id", "label", "domain", "country", "source"} <= names
    assert {"limit", "format"} <= names
    ok = operation["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/AnalyticsEnvelope")
    assert "text/csv" in ok
    assert {"403", "404", "422"} <= set(operation["responses"])


@pytest.mark.parametrize("interval", ["none", "hour", "day", "week", "month"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
@pytest.mark.parametrize("through", [False, True])
def test_the_cover_is_exactly_the_window_and_no_day_straddles_buckets(interval: str, tz: str, through: bool) -> None:
    from api.analytics.window import bucket_starts, cover
    from api.stats.window import Window, ceil_hour

    start, end = datetime(2026, 3, 1, 7, tzinfo=UTC), datetime(2026, 4, 3, 17, tzinfo=UTC)
    if interval == "hour":
        end = start + timedelta(days=3, hours=5)
    window = Window(start, end, ZoneInfo(tz), interval)
    starts = bucket_starts(window)
    c = cover(window, starts, through=end - timedelta(hours=3) if through else None)
    starts = [ceil_hour(s) for s in starts]  # a bucket holds the hours starting in it (+05:30: from :30)
    covered: list[datetime] = []
    for lo, hi in c.hours:
        covered += [lo + timedelta(hours=h) for h in range(int((hi - lo) / timedelta(hours=1)))]
    day_hours: list[datetime] = []
    for d0, d1 in c.days:
        for n in range((d1 - d0).days):
            midnight = datetime(d0.year, d0.month, d0.day, tzinfo=UTC) + timedelta(days=n)
            hours_of_day = [midnight + timedelta(hours=h) for h in range(24)]
            # the whole day falls in the bucket its midnight falls in (or, the last day, runs past the end)
            bucket = max(i for i, s in enumerate(starts) if s <= midnight)
            stop = starts[bucket + 1] if bucket + 1 < len(starts) else None
            assert stop is None or hours_of_day[-1] < stop
            day_hours += [h for h in hours_of_day if h < end]
    all_hours = covered + day_hours
    assert len(all_hours) == len(set(all_hours))
    assert sorted(all_hours) == [start + timedelta(hours=h) for h in range(int((end - start) / timedelta(hours=1)))]
