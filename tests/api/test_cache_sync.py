"""Write-through, repair and rebuild of the serving cache against the real PostgreSQL and Redis."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from api.serving import sync as cache_sync
from redirector.cache import decode_record
from redirector.keys import clicks_key, invalidation_channel, link_key, page_key, ready_key


async def add_link(pool, team, code: str, url: str = "https://example.com/") -> uuid.UUID:
    link_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO links (id, team_id, code, url, destination) VALUES ($1, $2, $3, $4, $4)", link_id, team, code, url
    )
    return link_id


async def test_sync_writes_record_and_publishes_key(ctx) -> None:
    settings, pool, redis, team = ctx
    link_id = await add_link(pool, team, "abc")
    pubsub = redis.pubsub()
    await pubsub.subscribe(invalidation_channel(settings.key_prefix))
    await pubsub.get_message(timeout=1)  # subscribe confirmation

    assert await cache_sync.sync_link(pool, redis, settings.serving, "abc")

    record = decode_record(await redis.get(link_key(settings.key_prefix, "abc")))
    assert (record.id, record.url, record.status) == (str(link_id), "https://example.com/", 302)
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    assert message is not None and message["data"] == link_key(settings.key_prefix, "abc").encode()
    await pubsub.aclose()


async def test_sync_of_deleted_link_removes_record(ctx) -> None:
    settings, pool, redis, team = ctx
    await add_link(pool, team, "gone")
    await cache_sync.sync_link(pool, redis, settings.serving, "gone")
    await pool.execute("DELETE FROM links WHERE code = 'gone'")
    await cache_sync.sync_link(pool, redis, settings.serving, "gone")
    assert await redis.exists(link_key(settings.key_prefix, "gone")) == 0


async def test_failed_cache_write_is_queued_then_repaired(ctx) -> None:
    settings, pool, redis, team = ctx
    await add_link(pool, team, "later")
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        assert not await cache_sync.sync_link(pool, dead, settings.serving, "later")
    finally:
        await dead.aclose()
    assert await pool.fetchval("SELECT count(*) FROM cache_repairs WHERE kind = 'link' AND ref = 'later'") == 1
    assert await redis.exists(link_key(settings.key_prefix, "later")) == 0

    assert await cache_sync.repair_pending(pool, redis, settings.serving) == 1
    assert await redis.exists(link_key(settings.key_prefix, "later")) == 1
    assert await pool.fetchval("SELECT count(*) FROM cache_repairs") == 0


async def test_rebuild_rewrites_everything_and_sweeps_stale(ctx) -> None:
    settings, pool, redis, team = ctx
    for i in range(1203):
        await add_link(pool, team, f"c{i}", f"https://example.com/{i}")
    await redis.set(link_key(settings.key_prefix, "stale"), b"L1{}")
    seen: list[tuple[int, int]] = []

    written = await cache_sync.rebuild_all(pool, redis, settings.serving, progress=lambda d, t: seen.append((d, t)))

    assert written == 1203
    assert seen[0] == (0, 1203) and seen[-1] == (1203, 1203)
    record = decode_record(await redis.get(link_key(settings.key_prefix, "c1202")))
    assert record.url == "https://example.com/1202"
    assert await redis.exists(link_key(settings.key_prefix, "stale")) == 0
    assert await redis.get(ready_key(settings.key_prefix)) == b"1"


async def test_heal_rebuild_never_overwrites_a_fresher_record(ctx) -> None:
    settings, pool, redis, team = ctx
    await add_link(pool, team, "fresh", "https://old.example/")
    await redis.set(link_key(settings.key_prefix, "fresh"), b"newer")
    await cache_sync.rebuild_all(pool, redis, settings.serving, only_missing=True)
    assert await redis.get(link_key(settings.key_prefix, "fresh")) == b"newer"


async def test_rebuild_restores_lost_click_limits_without_lowering_live_ones(ctx) -> None:
    settings, pool, redis, team = ctx
    lost = await add_link(pool, team, "capped")
    live = await add_link(pool, team, "busy")
    await pool.execute("UPDATE links SET max_clicks = 10, scan_count = 7 WHERE id = ANY($1::uuid[])", [lost, live])
    await redis.set(clicks_key(settings.key_prefix, str(live)), 9)  # the edge is ahead of the roll-up

    await cache_sync.rebuild_all(pool, redis, settings.serving, only_missing=True)

    assert await redis.get(clicks_key(settings.key_prefix, str(lost))) == b"7"
    assert await redis.get(clicks_key(settings.key_prefix, str(live))) == b"9"


async def test_full_rebuild_drops_pages_that_no_longer_serve(ctx) -> None:
    settings, pool, redis, team = ctx
    await redis.set(page_key(settings.key_prefix, "ghost"), b"P1{}\n<p>old</p>")
    await cache_sync.rebuild_all(pool, redis, settings.serving)
    assert await redis.exists(page_key(settings.key_prefix, "ghost")) == 0


async def test_a_rebuild_reaches_edges_that_remembered_a_miss(ctx, env) -> None:
    """Redis lost a record and an edge cached the miss; the rebuild puts it back and tells every
    edge to forget, so the link serves again within a second, not when the miss expires (5 s)."""
    import asyncio
    import time

    import httpx

    from redirector.app import create_app as create_edge
    from redirector.settings import Settings as EdgeSettings

    settings, pool, redis, team = ctx
    await add_link(pool, team, "lost", "https://example.com/back")
    await cache_sync.rebuild_all(pool, redis, settings.serving)
    edge_app = create_edge(EdgeSettings.from_env(env))  # in-process cache on, as in production
    async with edge_app.router.lifespan_context(edge_app) as state:

        async def with_state(scope, receive, send):  # what an ASGI server hands each request
            await edge_app({**scope, "state": dict(state)}, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://sho.rt") as edge:
            assert (await edge.get("/lost")).status_code == 302
            await redis.unlink(link_key(settings.key_prefix, "lost"))  # lost, unannounced (a flush)
            await redis.publish(invalidation_channel(settings.key_prefix), link_key(settings.key_prefix, "lost"))
            deadline = time.monotonic() + 1
            while (await edge.get("/lost")).status_code != 404:  # the edge now remembers the miss
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await cache_sync.rebuild_all(pool, redis, settings.serving, only_missing=True)
            started = time.monotonic()
            while (await edge.get("/lost")).status_code != 302:
                assert time.monotonic() - started < 1.0, "the edge kept answering 404 after the rebuild"
                await asyncio.sleep(0.02)
