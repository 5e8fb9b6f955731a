"""meta.complete_through / meta.pending_events on every stats response (api/freshness.py).

Real Redis streams and PostgreSQL watermarks: events pushed and not rolled up are pending and
``complete_through`` stays before them; a roll-up drain brings it past them; Redis gone still
answers 200, with the fields null.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.freshness import COUNT_CAP
from api.settings import Settings
from redirector.events import CLICK, EVENT_FIELD, ORPHAN, ORPHAN_ROOT, VIEW, Event, encode_batch, encode_event
from redirector.keys import event_stream_key
from redirector.redis_url import DEFAULT_REDIS_URL
from tests.api.support import Api, data, roll_up
from tests.redirector.edge_support import private_redis
from tests.support import TeamKey

FIELDS = ("complete_through", "pending_events", "pending_exact")


def ms(text: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 ``...Z`` time with milliseconds."""
    assert text.endswith("Z") and len(text) == len("2026-11-01T10:00:00.123Z"), text
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def entry_ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def xadd(sync_redis: redis.Redis, prefix: str, shard: int, events: list[Event]) -> bytes:
    payload = encode_batch(encode_event(e) for e in events)
    return cast(bytes, sync_redis.xadd(event_stream_key(prefix, shard), {EVENT_FIELD: payload}))


def subjects(api: Api) -> dict[str, str]:
    """A link, a bio page and a domain of the team: their ids by kind."""
    link = api.add_link("fresh")
    page = data(api.post("/bio-pages", json={"handle": "fresh"}), 201)["id"]
    domain = data(api.post("/domains", json={"hostname": "go.fresh.test"}), 201)["id"]
    return {"link": link, "page": page, "domain": domain}


def stats_paths(ids: dict[str, str]) -> list[str]:
    return [
        f"/links/{ids['link']}/stats",
        f"/bio-pages/{ids['page']}/stats/counters",
        f"/bio-pages/{ids['page']}/stats/views",
        f"/domains/{ids['domain']}/stats",
    ]


def meta(api: Api, path: str) -> dict[str, Any]:
    response = api.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["meta"]
    return body


def test_pending_events_hold_complete_through_back_until_the_roll_up(
    api: Api, env: dict[str, str], settings: Settings, sync_redis: redis.Redis
) -> None:
    ids = subjects(api)
    team = str(api.team_id)
    now = int(time.time() * 1000)
    clicks = [Event(CLICK, now, team, link_id=ids["link"], visitor=f"v{i}") for i in range(3)]
    views = [Event(VIEW, now, team, page_id=ids["page"], visitor=f"v{i}") for i in range(2)]
    orphans = [Event(ORPHAN, now, team, domain_id=ids["domain"], extra=ORPHAN_ROOT, visitor="v9")]
    entries = [
        xadd(sync_redis, settings.key_prefix, 0, clicks),
        xadd(sync_redis, settings.key_prefix, 3, views),
        xadd(sync_redis, settings.key_prefix, 5, orphans),
    ]
    oldest, newest = min(map(entry_ms, entries)), max(map(entry_ms, entries))

    for path in stats_paths(ids):
        before = meta(api, path)
        assert before["pending_events"] == 6, (path, before)
        assert before["pending_exact"] is True
        # Through the millisecond before the oldest pending entry was accepted: not one ms more.
        assert ms(before["complete_through"]) == oldest - 1, (path, before)
    assert data(api.get(f"/links/{ids['link']}/stats"))["totals"]["clicks"] == 0

    assert roll_up(env, settle=0) == 3
    checked = int(time.time() * 1000)
    for path in stats_paths(ids):
        after = meta(api, path)
        assert after["pending_events"] == 0, (path, after)
        assert after["pending_exact"] is True
        assert newest <= ms(after["complete_through"]) <= int(time.time() * 1000), (path, after)
        assert ms(after["complete_through"]) >= checked - 1  # "now": the moment of the check
    assert data(api.get(f"/links/{ids['link']}/stats"))["totals"]["clicks"] == 3
    assert data(api.get(f"/bio-pages/{ids['page']}/stats/counters"))["views"] == 2
    assert data(api.get(f"/domains/{ids['domain']}/stats"))["orphan_visits"]["total"] == 1


def test_counting_starts_after_each_shards_watermark(
    api: Api, settings: Settings, sync_redis: redis.Redis, db: Callable[..., Any]
) -> None:
    """Entries at or before a shard's watermark (applied, not trimmed yet) are not pending; a shard
    without a watermark row counts from 0-0. Blank lines in an entry are not events."""
    link = api.add_link("marks")
    team, now = str(api.team_id), int(time.time() * 1000)
    click = encode_event(Event(CLICK, now, team, link_id=link))
    stream = event_stream_key(settings.key_prefix, 2)
    applied = cast(bytes, sync_redis.xadd(stream, {EVENT_FIELD: encode_batch([click] * 5)}))
    waiting = cast(bytes, sync_redis.xadd(stream, {EVENT_FIELD: f"{click}\n\n{click}\n".encode()}))
    db("INSERT INTO rollup_watermarks (shard, last_id) VALUES (2, $1)", applied.decode())
    later = xadd(sync_redis, settings.key_prefix, 6, [Event(CLICK, now, team, link_id=link)])

    body = meta(api, f"/links/{link}/stats")
    assert body["pending_events"] == 3  # 2 in shard 2 after its watermark, 1 in shard 6
    assert ms(body["complete_through"]) == min(entry_ms(waiting), entry_ms(later)) - 1

    db("UPDATE rollup_watermarks SET last_id = $1 WHERE shard = 2", waiting.decode())
    body = meta(api, f"/links/{link}/stats")
    assert body["pending_events"] == 1
    assert ms(body["complete_through"]) == entry_ms(later) - 1


@pytest.mark.parametrize("extra", [0, 1])
def test_a_long_backlog_is_counted_up_to_the_cap(
    api: Api, settings: Settings, sync_redis: redis.Redis, extra: int
) -> None:
    link = api.add_link(f"cap{extra}")
    line = encode_event(Event(CLICK, int(time.time() * 1000), str(api.team_id), link_id=link))
    stream = event_stream_key(settings.key_prefix, 1)
    with sync_redis.pipeline(transaction=False) as pipe:
        for _ in range(COUNT_CAP + extra):
            pipe.xadd(stream, {EVENT_FIELD: encode_batch([line, line])})
        first = pipe.execute()[0]
    body = meta(api, f"/links/{link}/stats")
    assert body["pending_events"] == 2 * COUNT_CAP  # never more than the cap's entries are read
    assert body["pending_exact"] is (extra == 0)
    assert ms(body["complete_through"]) == entry_ms(first) - 1


def test_stats_answer_without_redis_with_the_fields_null(
    env: dict[str, str], make_key: Callable[..., TeamKey], db: Callable[..., Any]
) -> None:
    key = make_key("acme")
    with private_redis() as (url, proc):
        assert url != DEFAULT_REDIS_URL
        settings = Settings.from_env({**env, "REDIS_URL": url})
        with TestClient(create_app(settings)) as client:
            api = Api(client, key, settings.database_url)
            ids = subjects(api)
            assert meta(api, f"/links/{ids['link']}/stats")["pending_events"] == 0  # Redis up: known
            proc.terminate()
            proc.wait(10)
            for path in stats_paths(ids):
                started = time.monotonic()
                response = api.get(path)
                assert response.status_code == 200, (path, response.text)
                body = response.json()
                assert {f: body["meta"][f] for f in FIELDS} == dict.fromkeys(FIELDS), (path, body["meta"])
                assert body["data"]
                assert time.monotonic() - started < 5


def test_every_configured_shard_is_looked_at(env: dict[str, str], make_key: Callable[..., TeamKey]) -> None:
    """With EVENT_SHARDS=12, an entry on shard 11 (past the default 8, no watermark row yet) is pending."""
    settings = Settings.from_env({**env, "EVENT_SHARDS": "12"})
    with TestClient(create_app(settings)) as client:
        api = Api(client, make_key(), settings.database_url)
        link = api.add_link("shard-11")
        sync_redis = redis.Redis.from_url(settings.redis_url)
        try:
            xadd(
                sync_redis,
                settings.key_prefix,
                11,
                [Event(CLICK, int(time.time() * 1000), str(api.team_id), link_id=link)],
            )
        finally:
            sync_redis.close()
        assert meta(api, f"/links/{link}/stats")["pending_events"] == 1
