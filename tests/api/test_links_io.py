"""api.links.io: the CLI's import (same validation as the API, per-row errors) and export."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from api.links import io as links_io
from api.plans import PLANS
from redirector.cache import decode_record
from redirector.keys import link_key


async def test_import_reports_rows_and_writes_through(ctx) -> None:
    settings, pool, redis, team = ctx
    rows = [
        {"url": "https://e.com/1", "custom_slug": "one", "labels": ["a", "b"]},
        {"url": "not a url"},
        {"url": "https://e.com/3", "custom_slug": "one"},
        # CSV cells arrive as text
        {"url": "https://e.com/4", "enabled": "false", "redirect_type": "301", "max_clicks": "5", "forward_query": "1"},
        {"url": "https://e.com/5", "redirect_type": "303"},
        {"url": "https://e.com/6", "colour": "red"},
    ]
    seen: list[tuple[int, int]] = []
    report = await links_io.import_links(pool, redis, settings, team, rows, lambda d, t: seen.append((d, t)))
    assert report.created == 2
    assert [n for n, _ in report.errors] == [2, 3, 5, 6]
    messages = dict(report.errors)
    assert "url" in messages[2] and messages[3] == "The slug 'one' is already in use."
    assert "redirect_type" in messages[5] and "colour" in messages[6]
    assert seen[0] == (0, 6) and seen[-1] == (6, 6)
    row = await pool.fetchrow("SELECT * FROM links WHERE url = 'https://e.com/4'")
    assert (row["enabled"], row["redirect_type"], row["max_clicks"], row["forward_query"]) == (False, 301, 5, True)
    record = decode_record(await redis.get(link_key(settings.key_prefix, "one")))
    assert record.url == "https://e.com/1" and record.team_id == str(team)


async def test_import_in_chunks_and_within_the_plan(ctx, monkeypatch) -> None:
    settings, pool, redis, team = ctx
    monkeypatch.setitem(PLANS, "free", dataclasses.replace(PLANS["free"], max_links=230))
    rows = [{"url": f"https://e.com/{i}"} for i in range(250)]
    seen: list[tuple[int, int]] = []
    report = await links_io.import_links(pool, redis, settings, team, rows, lambda d, t: seen.append((d, t)))
    assert seen == [(0, 250), (100, 250), (200, 250), (250, 250)]
    assert report.created == 230
    assert [n for n, _ in report.errors] == list(range(231, 251))
    assert all("plan allows 230 links" in m for _, m in report.errors)
    assert await pool.fetchval("SELECT count(*) FROM links WHERE team_id = $1", team) == 230


async def test_import_of_an_unknown_team_fails(ctx) -> None:
    settings, pool, redis, _ = ctx
    with pytest.raises(ValueError, match="no team"):
        await links_io.import_links(pool, redis, settings, uuid.uuid4(), [{"url": "https://e.com"}])


async def test_export_then_import_round_trips(ctx, monkeypatch) -> None:
    settings, pool, redis, team = ctx
    monkeypatch.setattr(links_io, "EXPORT_BATCH", 2)
    rows = [
        {
            "url": "https://e.com/a?x=1",
            "custom_slug": "exp-a",
            "labels": ["l1"],
            "utm": {"source": "s", "campaign": "c"},
            "routing_rules": [{"url": "https://e.com/ca", "conditions": {"country": ["CA"]}}],
            "expires_at": "2031-01-01T00:00:00Z",
            "redirect_type": 307,
            "title": "A",
            "notes": "n",
        },
        {"url": "https://e.com/b", "custom_slug": "exp-b", "enabled": False, "max_clicks": 3, "forward_query": True},
        {"url": "https://e.com/c", "custom_slug": "exp-c", "password": "pw"},
    ]
    assert (await links_io.import_links(pool, redis, settings, team, rows)).created == 3
    async with pool.acquire() as conn:
        exported = [row async for row in links_io.export_links(conn, team, settings)]
    assert [r["short_code"] for r in exported] == ["exp-a", "exp-b", "exp-c"]  # oldest first, across batches
    a = exported[0]
    assert a["url"] == "https://e.com/a?x=1"
    assert a["destination"] == "https://e.com/a?x=1&utm_source=s&utm_campaign=c"
    assert a["short_url"] == "http://sho.rt/exp-a"
    assert exported[2]["password_protected"] is True and "password_hash" not in exported[2]

    await pool.execute("DELETE FROM links")
    report = await links_io.import_links(pool, redis, settings, team, exported)
    assert (report.created, report.errors) == (3, [])
    async with pool.acquire() as conn:
        again = [row async for row in links_io.export_links(conn, team, settings)]
    volatile = {"id", "created_at", "updated_at", "password_protected"}
    assert [{k: v for k, v in r.items() if k not in volatile} for r in again] == [
        {k: v for k, v in r.items() if k not in volatile} for r in exported
    ]


def test_import_body_maps_exported_fields() -> None:
    body = links_io.import_body(
        {"id": "x", "short_code": "c", "destination": "https://d", "scan_count": 4, "short_url": "u", "title": "t"}
    )
    assert body == {"custom_slug": "c", "url": "https://d", "title": "t"}
    assert links_io.import_body({"url": "https://u", "destination": "https://d"}) == {"url": "https://u"}
