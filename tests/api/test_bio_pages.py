"""Bio pages through both API shapes: round trips, block replace semantics, handles, publishing."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from kit.postgres import create_pool
from tests.api.support import Api, data, error_fields, sync_link
from tests.support import sql
from workers.jobs import delete_page, purge_deleted_pages


def blocks_page(api: Api, **body) -> dict:
    return data(api.post("/bio-pages", json=body), 201)


def test_page_data_shape_is_readable_and_editable_as_blocks(api: Api) -> None:
    created = data(
        api.post(
            "/bio/pages",
            json={
                "title": "Acme Inc",
                "description": "Official links",
                "page_data": {
                    "theme": "dark",
                    "avatar_url": "https://cdn.example/a.png",
                    "links": [{"label": "Site", "url": "https://acme.com"}, {"label": "Blog", "url": "https://b.acme"}],
                    "layout": "grid",
                    "colors": {"bg": "#000"},
                },
            },
        ),
        201,
    )
    page = data(api.get(f"/bio-pages/{created['id']}"))
    assert (page["handle"], page["display_name"], page["headline"]) == ("acme-inc", "Acme Inc", "Official links")
    assert page["theme"]["palette"] == "dark" and page["avatar_url"] == "https://cdn.example/a.png"
    assert [(b["type"], b["label"], b["url"]) for b in page["blocks"]] == [
        ("link", "Site", "https://acme.com"),
        ("link", "Blog", "https://b.acme"),
    ]

    # Edit through the blocks shape: a header first, a social icon last, a new accent.
    header = {"type": "header", "label": "Hello", "sort_order": 0}
    kept = [{"id": b["id"], "sort_order": i + 1} for i, b in enumerate(page["blocks"])]
    social = {"type": "social", "url": "https://github.com/acme", "sort_order": 9}
    body = {"theme": {"palette": "midnight", "accent": "#f0A"}, "blocks": [header, *kept, social]}
    data(api.patch(f"/bio-pages/{created['id']}", json=body))

    again = data(api.get(f"/bio/pages/{created['id']}"))
    assert again["page_data"] == {
        "theme": "midnight",
        "avatar_url": "https://cdn.example/a.png",
        "links": [{"label": "Site", "url": "https://acme.com"}, {"label": "Blog", "url": "https://b.acme"}],
        "layout": "grid",
        "colors": {"bg": "#000"},
    }
    shown = data(api.get(f"/bio-pages/{created['id']}"))
    assert shown["theme"]["accent"] == "#ff00aa"


def test_blocks_shape_is_readable_and_editable_as_page_data(api: Api, env) -> None:
    link_id = api.add_link("promo", "https://acme.example/promo")
    page = blocks_page(
        api,
        handle="Acme",
        display_name="Acme Co.",
        headline="One link",
        avatar_path="https://cdn.example/acme.png",
        theme={"palette": "sunset", "button_style": "outline"},
        blocks=[
            {"type": "header", "label": "Start"},
            {"type": "link", "label": "Shop", "url": "https://acme.example/shop"},
            {"type": "text", "label": "About us"},
            {"type": "link", "label": "Promo", "link_id": link_id},
            {"type": "link", "label": "Hidden", "url": "https://acme.example/hidden", "is_active": False},
            {"type": "social", "url": "https://instagram.com/acme"},
        ],
    )
    shaped = data(api.get(f"/bio/pages/{page['id']}"))
    assert (shaped["slug"], shaped["title"], shaped["description"]) == ("Acme", "Acme Co.", "One link")
    assert shaped["page_data"] == {
        "theme": "sunset",
        "avatar_url": "https://cdn.example/acme.png",
        "links": [
            {"label": "Shop", "url": "https://acme.example/shop"},
            {"label": "Promo", "url": "http://sho.rt/promo"},
        ],
    }

    # Replacing page_data.links swaps only the active link blocks, in their places; the rest stays.
    body = {"page_data": {"links": [{"label": "Shop!", "url": "https://acme.example/shop"},
                                    {"label": "New", "url": "https://acme.example/new"},
                                    {"label": "Also new", "url": "https://acme.example/new2"}]}}  # fmt: skip
    updated = data(api.patch(f"/bio/pages/{page['id']}", json=body))
    assert [link["label"] for link in updated["page_data"]["links"]] == ["Shop!", "New", "Also new"]
    blocks = data(api.get(f"/bio-pages/{page['id']}"))["blocks"]
    assert [(b["type"], b["label"]) for b in blocks] == [
        ("header", "Start"),
        ("link", "Shop!"),
        ("text", "About us"),
        ("link", "New"),
        ("link", "Also new"),
        ("link", "Hidden"),
        ("social", ""),
    ]
    assert blocks[1]["id"] == page["blocks"][1]["id"]  # same url: same block, same click history
    assert blocks[0]["id"] == page["blocks"][0]["id"] and blocks[6]["id"] == page["blocks"][5]["id"]
    assert [b["sort_order"] for b in blocks] == list(range(7))


def test_block_replace_semantics(api: Api) -> None:
    page = blocks_page(
        api,
        blocks=[
            {"type": "link", "label": "One", "url": "https://one.example", "icon": "github", "config": {"k": 1}},
            {"type": "link", "label": "Two", "url": "https://two.example"},
            {"type": "text", "label": "Three"},
        ],
    )
    one, two, three = page["blocks"]
    body = {
        "blocks": [
            {"id": three["id"], "sort_order": 0, "config": {"text": "Longer text"}},
            {"id": one["id"], "label": "One!", "sort_order": 1},
            {"type": "image", "url": "https://img.example/a.png", "config": {"width": 640, "height": 480}},
        ]
    }
    updated = data(api.patch(f"/bio-pages/{page['id']}", json=body))
    got = updated["blocks"]
    assert [b["id"] for b in got[:2]] == [three["id"], one["id"]]
    assert got[1] | {"label": "One!", "url": "https://one.example", "icon": "github", "config": {"k": 1}} == got[1]
    assert got[0]["config"] == {"text": "Longer text"} and got[0]["label"] == "Three"
    assert got[2]["type"] == "image" and got[2]["sort_order"] == 2 and got[2]["id"] not in (one["id"], two["id"])
    rows = sql(api.database_url, "SELECT id FROM bio_blocks WHERE page_id = $1", uuid.UUID(page["id"]))
    assert {str(r["id"]) for r in rows} == {b["id"] for b in got}

    other = blocks_page(api, blocks=[{"type": "header", "label": "Elsewhere"}])
    bad = api.patch(
        f"/bio-pages/{page['id']}",
        json={
            "blocks": [
                {"id": other["blocks"][0]["id"], "label": "steal"},
                {"id": one["id"]},
                {"id": one["id"]},
                {"label": "no type"},
                {"type": "link", "label": "nowhere"},
                {"type": "link", "url": "javascript:alert(1)"},
                {"type": "form", "config": {"fields": ["phone"]}},
                {"type": "image", "url": "http://insecure.example/a.png", "config": {"width": 0}},
                {"type": "embed", "url": "https://youtu.be/dQw4w9WgXcQ", "config": {"provider": "flash"}},
                {"type": "header", "link_id": str(uuid.uuid4())},
            ]
        },
    )
    assert error_fields(bad) == [
        "blocks[5].url",  # pydantic checks formats before the stored blocks are looked at
    ]
    bad = api.patch(
        f"/bio-pages/{page['id']}",
        json={
            "blocks": [
                {"id": other["blocks"][0]["id"], "label": "steal"},
                {"id": one["id"]},
                {"id": one["id"]},
                {"label": "no type"},
                {"type": "link", "label": "nowhere"},
                {"type": "form", "config": {"fields": ["phone"]}},
                {"type": "image", "url": "http://insecure.example/a.png", "config": {"width": 0}},
                {"type": "embed", "url": "https://youtu.be/dQw4w9WgXcQ", "config": {"provider": "flash"}},
                {"type": "header", "link_id": str(uuid.uuid4())},
                {"type": "link", "link_id": "not-a-uuid"},
            ]
        },
    )
    assert error_fields(bad) == [
        "blocks[0].id",
        "blocks[2].id",
        "blocks[3].type",
        "blocks[4].url",
        "blocks[5].config.fields",
        "blocks[6].url",
        "blocks[6].config.width",
        "blocks[7].config.provider",
        "blocks[8].link_id",
        "blocks[9].link_id",
    ]
    # Nothing of the failed request was applied.
    assert data(api.get(f"/bio-pages/{page['id']}"))["blocks"] == updated["blocks"]
    too_many = api.patch(f"/bio-pages/{page['id']}", json={"blocks": [{"type": "header"}] * 101})
    assert error_fields(too_many) == ["blocks"]


def test_link_id_must_be_a_link_of_the_same_team(api: Api, make_api) -> None:
    rival = make_api("rival")
    theirs = rival.add_link("theirs")
    mine = api.add_link("mine")
    bad = api.post("/bio-pages", json={"blocks": [{"type": "link", "link_id": theirs}]})
    assert error_fields(bad) == ["blocks[0].link_id"]
    good = blocks_page(api, blocks=[{"type": "link", "link_id": mine}])
    assert good["blocks"][0]["link_id"] == mine
    # Deleting the link keeps the block (link_id becomes null).
    sql(api.database_url, "DELETE FROM links WHERE id = $1", uuid.UUID(mine))
    assert data(api.get(f"/bio-pages/{good['id']}"))["blocks"][0]["link_id"] is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"handle": "acme"}, "acme-2"),  # taken
        ({"handle": "ACME"}, "ACME-2"),  # taken case-insensitively
        ({"handle": "admin"}, "admin-2"),  # reserved
        ({"handle": "-bad handle!"}, "bad-handle"),  # invalid: a readable one from it
        ({"display_name": "Café Déjà Vu"}, "cafe-deja-vu"),
        ({"display_name": "Acme"}, "acme-2"),
        ({"handle": "new_one", "display_name": "Acme"}, "new_one"),
        ({}, "page"),
        ({"handle": "x" * 65}, "x" * 48),
        ({"handle": "shop\n"}, "shop"),
    ],
)
def test_handle_generation_on_create(api: Api, body: dict, expected: str) -> None:
    blocks_page(api, handle="acme")
    assert blocks_page(api, **body)["handle"] == expected


def test_handle_updates_and_database_uniqueness(api: Api, make_api, cache) -> None:
    first = blocks_page(api, handle="acme")
    second = blocks_page(api, handle="other")
    rival = make_api("rival")
    assert error_fields(api.patch(f"/bio-pages/{second['id']}", json={"handle": "ACME"})) == ["handle"]
    # Handles are global: another team cannot take one either.
    theirs = data(rival.post("/bio/pages", json={"title": "x", "slug": "acme"}), 201)
    assert theirs["slug"] == "acme-2"
    assert error_fields(rival.patch(f"/bio/pages/{theirs['id']}", json={"slug": "Acme"})) == ["slug"]
    assert error_fields(api.patch(f"/bio-pages/{second['id']}", json={"handle": "has space"})) == ["handle"]
    assert error_fields(api.patch(f"/bio-pages/{second['id']}", json={"handle": "api"})) == ["handle"]
    assert error_fields(api.patch(f"/bio-pages/{second['id']}", json={"handle": "_x"})) == ["handle"]
    assert error_fields(api.patch(f"/bio-pages/{second['id']}", json={"handle": "acme2\n"})) == ["handle"]
    assert error_fields(api.patch(f"/bio-pages/{second['id']}", json={"handle": "x" * 65})) == ["handle"]
    assert error_fields(api.patch(f"/bio/pages/{second['id']}", json={"slug": "acme"})) == ["slug"]
    assert data(api.patch(f"/bio-pages/{first['id']}", json={"handle": "AcMe"}))["handle"] == "AcMe"
    assert data(api.patch(f"/bio/pages/{second['id']}", json={"slug": "renamed"}))["slug"] == "renamed"

    with pytest.raises(asyncpg.UniqueViolationError):
        sql(
            api.database_url,
            "INSERT INTO bio_pages (id, team_id, handle) VALUES ($1, $2, 'ACME')",
            uuid.uuid4(),
            api.team_id,
        )


def test_publish_unpublish_rename_delete_seen_in_redis_and_at_the_edge(api: Api, env, cache, edge) -> None:
    link_id = api.add_link("promo7", "https://dest.example/promo")
    sync_link(env, "promo7")
    page = blocks_page(
        api,
        handle="Shop",
        display_name="Shop",
        blocks=[
            {"type": "link", "label": "Direct", "url": "https://direct.example/x"},
            {"type": "link", "label": "Tracked", "link_id": link_id},
            {"type": "form", "label": "Join", "config": {"fields": ["email", "name"]}},
            {"type": "link", "label": "Off", "url": "https://off.example", "is_active": False},
        ],
    )
    direct, tracked, form, off = (b["id"] for b in page["blocks"])
    assert cache("shop") is None and edge.get("/@shop").status_code == 404  # a draft is not public

    published = data(api.post(f"/bio/pages/{page['id']}/publish"))
    record = cache("shop")
    assert record is not None
    assert (record.id, record.team_id, record.handle) == (page["id"], str(api.team_id), "Shop")
    assert record.blocks == {direct: "https://direct.example/x"}
    assert record.block_links == {tracked: "promo7"} and record.forms == (form,)
    assert off not in record.html.decode()

    response = edge.get("/@shop")
    assert response.status_code == 200 and response.headers["etag"].strip('"') == record.etag
    assert "script-src" not in response.headers["content-security-policy"]
    assert edge.get("/@SHOP").status_code == 200
    assert edge.get("/shop", headers={"host": "bio.test"}).status_code == 200
    assert edge.get(f"/@shop/b/{direct}").headers["location"] == "https://direct.example/x"
    assert edge.get(f"/@shop/b/{tracked}").headers["location"] == "https://dest.example/promo"
    posted = edge.post(f"/@shop/f/{form}", data={"email": "a@b.example", "name": "A"})
    assert posted.status_code == 303

    data(api.post(f"/bio/pages/{page['id']}/unpublish"))
    assert cache("shop") is None and edge.get("/@shop").status_code == 404
    again = data(api.post(f"/bio/pages/{page['id']}/publish"))
    assert again["published_at"] == published["published_at"]  # only the first publish stamps it

    renamed = data(api.patch(f"/bio-pages/{page['id']}", json={"handle": "store"}))
    assert renamed["html_url"] == "http://bio.test/store"
    assert cache("shop") is None and cache("store").id == page["id"]
    assert edge.get("/@shop").status_code == 404 and edge.get("/@store").status_code == 200

    assert data(api.delete(f"/bio/pages/{page['id']}")) == {"deleted": True}
    assert cache("store") is None and edge.get("/@store").status_code == 404
    assert api.get(f"/bio/pages/{page['id']}").status_code == 404
    assert api.delete(f"/bio/pages/{page['id']}").status_code == 404
    # The handle is free again at once; the queued job then removes the rows.
    assert blocks_page(api, handle="store")["handle"] == "store"
    assert asyncio.run(_run_job(env["DATABASE_URL"], page["id"])) is True
    assert sql(api.database_url, "SELECT 1 FROM bio_pages WHERE id = $1", uuid.UUID(page["id"])) == []
    assert sql(api.database_url, "SELECT 1 FROM bio_blocks WHERE page_id = $1", uuid.UUID(page["id"])) == []


async def _run_job(database_url: str, page_id: str) -> bool:
    pool = await create_pool(database_url)
    try:
        return await delete_page({"pg": pool}, page_id)
    finally:
        await pool.close()


def test_delete_enqueues_the_job_and_purge_catches_lost_ones(api: Api, env) -> None:
    page = blocks_page(api, handle="gone", blocks=[{"type": "header", "label": "x"}])
    data(api.delete(f"/bio-pages/{page['id']}"))
    import redis as redis_sync

    r = redis_sync.Redis.from_url(env["REDIS_URL"])
    try:
        queued = r.zrange(f"{env['KEY_PREFIX']}arq:queue{{arq:abort}}", 0, -1)
    finally:
        r.close()
    # Queue and job id carry arq's hash tag, so arq's transactions stay in one Redis Cluster slot.
    # The id starts with the key prefix: arq's own keys (arq:job:<id>) ignore KEY_PREFIX.
    assert f"{env['KEY_PREFIX']}delete_page:{page['id']}{{arq:abort}}".encode() in queued

    live = blocks_page(api, handle="live")

    async def purge() -> int:
        pool = await create_pool(env["DATABASE_URL"])
        try:
            return await purge_deleted_pages({"pg": pool}, older_than_s=0)
        finally:
            await pool.close()

    assert asyncio.run(purge()) == 1
    ids = {str(r["id"]) for r in sql(api.database_url, "SELECT id FROM bio_pages")}
    assert ids == {live["id"]}


def test_delete_reaches_an_edge_that_cached_the_page(api: Api, env) -> None:
    """With the edge's in-process cache on, the invalidation message makes it drop the page."""
    from starlette.testclient import TestClient

    from redirector.app import create_app as create_edge
    from redirector.settings import Settings as EdgeSettings

    page = blocks_page(api, handle="cached", blocks=[{"type": "header", "label": "hi"}])
    data(api.patch(f"/bio-pages/{page['id']}", json={"is_published": True}))
    edge_app = create_edge(EdgeSettings.from_env({**env, "LOCAL_CACHE": "1", "LOCAL_CACHE_TTL": "3600"}))
    with TestClient(edge_app, base_url="http://sho.rt") as edge:
        assert edge.get("/@cached").status_code == 200
        assert edge.get("/@cached").status_code == 200  # now served from the edge's own memory
        data(api.delete(f"/bio-pages/{page['id']}"))
        deadline = time.monotonic() + 5
        while edge.get("/@cached").status_code != 404:
            assert time.monotonic() < deadline, "the edge kept serving a deleted page"
            time.sleep(0.02)


def test_cache_rebuild_restores_published_pages_only(api: Api, env, cache) -> None:
    from redis.asyncio import Redis

    from api.serving import sync as cache_sync
    from api.settings import Settings

    published = blocks_page(api, handle="one", blocks=[{"type": "link", "url": "https://a.example"}])
    data(api.patch(f"/bio-pages/{published['id']}", json={"is_published": True}))
    blocks_page(api, handle="draft")
    before = cache("one")

    async def wipe_and_rebuild() -> int:
        settings = Settings.from_env(env)
        pool = await create_pool(settings.database_url)
        redis = Redis.from_url(settings.redis_url)
        try:
            await redis.delete(f"{settings.key_prefix}p:one")
            return await cache_sync.rebuild_all(pool, redis, settings.serving)
        finally:
            await redis.aclose()
            await pool.close()

    assert asyncio.run(wipe_and_rebuild()) == 1
    assert cache("one") == before and cache("draft") is None


# arq 0.28's Worker.close() calls redis-py's deprecated close().
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
def test_the_worker_runs_the_queued_delete(api: Api, env) -> None:
    from workers.settings import Settings as WorkerSettings
    from workers.worker import create_worker

    page = blocks_page(api, handle="bye", blocks=[{"type": "text", "label": "x"}])
    data(api.delete(f"/bio-pages/{page['id']}"))

    async def work() -> None:
        settings = WorkerSettings.from_env({**env, "WORKER_METRICS_PORT": "0"})
        worker = create_worker(settings, burst=True, poll_delay=0, handle_signals=False)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        assert worker.jobs_complete == 1 and worker.jobs_failed == 0

    asyncio.run(work())
    assert sql(api.database_url, "SELECT 1 FROM bio_pages WHERE id = $1", uuid.UUID(page["id"])) == []


def test_pages_follow_their_short_links(api: Api, env, cache) -> None:
    from redis.asyncio import Redis

    from api.bio import service
    from api.links import queries
    from api.settings import Settings

    link_id = api.add_link("via", "https://dest.example", title="Our promo")
    page = blocks_page(api, handle="follow", blocks=[{"type": "link", "link_id": link_id}])
    data(api.patch(f"/bio-pages/{page['id']}", json={"is_published": True}))
    assert b"Our promo" in cache("follow").html  # an unlabelled block shows the link's title

    async def delete_link() -> None:
        settings = Settings.from_env(env)
        pool = await create_pool(settings.database_url)
        redis = Redis.from_url(settings.redis_url)
        try:
            async with pool.acquire() as conn:
                handles = await queries.page_handles_using(conn, uuid.UUID(link_id))
                await conn.execute("DELETE FROM links WHERE id = $1", uuid.UUID(link_id))
            await service.resync_pages(pool, redis, settings, handles)
        finally:
            await redis.aclose()
            await pool.close()

    asyncio.run(delete_link())
    record = cache("follow")
    assert record.block_links == {} and b"Our promo" not in record.html


def test_lists_are_newest_first_with_cursors_in_both_shapes(api: Api, make_api) -> None:
    ids = [blocks_page(api, handle=f"p{i}", headline="Acme" if i % 2 else "")["id"] for i in range(5)]
    make_api("rival").post("/bio-pages", json={"handle": "theirs"})
    for path in ("/bio-pages", "/bio/pages"):
        seen, cursor = [], None
        while True:
            response = api.get(path, params={"per_page": 2, **({"cursor": cursor} if cursor else {})})
            seen += [row["id"] for row in data(response)]
            cursor = response.json()["meta"]["next_cursor"]
            if cursor is None:
                break
        assert seen == ids[::-1], path
    matches = data(api.get("/bio-pages", params={"search": "acme"}))
    assert [row["id"] for row in matches] == [ids[3], ids[1]]
    assert data(api.get("/bio-pages/search", params={"q": "P3"}))[0]["handle"] == "p3"
    assert error_fields(api.get("/bio-pages", params={"per_page": 101})) == ["per_page"]
