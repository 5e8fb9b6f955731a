"""Keys, abilities, teams and plans on every bio route; 422s that name the field."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from api import plans
from tests.api.support import Api, data, error_fields

# (method, path template, ability, JSON body)
ROUTES = [
    ("GET", "/bio-pages", "bio:read", None),
    ("POST", "/bio-pages", "bio:write", {"display_name": "New"}),
    ("GET", "/bio-pages/search?q=a", "bio:read", None),
    ("GET", "/bio-pages/{id}", "bio:read", None),
    ("PATCH", "/bio-pages/{id}", "bio:write", {"headline": "x"}),
    ("DELETE", "/bio-pages/{id}", "bio:write", None),
    ("GET", "/bio-pages/{id}/stats/counters", "bio:analytics:read", None),
    ("GET", "/bio-pages/{id}/stats/views", "bio:analytics:read", None),
    ("GET", "/bio-pages/{id}/submissions", "bio:submissions:read", None),
    ("GET", "/bio/pages", "bio:read", None),
    ("POST", "/bio/pages", "bio:write", {"title": "New"}),
    ("GET", "/bio/pages/{id}", "bio:read", None),
    ("PATCH", "/bio/pages/{id}", "bio:write", {"title": "x"}),
    ("DELETE", "/bio/pages/{id}", "bio:write", None),
    ("POST", "/bio/pages/{id}/publish", "bio:write", None),
    ("POST", "/bio/pages/{id}/unpublish", "bio:write", None),
]
ALL_BUT = {
    "bio:read": "links:read,links:write,bio:write,bio:analytics:read",
    "bio:write": "links:read,bio:read,bio:analytics:read",
    "bio:analytics:read": "bio:read,bio:write,links:analytics:read",
    # Submissions hold visitors' emails: reading pages, or even their analytics, is not enough.
    "bio:submissions:read": "bio:read,bio:write,bio:analytics:read",
}


def call(api: Api, route: tuple, page_id: str):
    method, path, _, body = route
    return api.request(method, path.format(id=page_id), json=body)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_every_route_checks_key_ability_and_team(api: Api, make_api, client, route) -> None:
    page = data(api.post("/bio-pages", json={"handle": "mine"}), 201)

    method, path, ability, body = route
    anonymous = client.request(method, "/api/v1" + path.format(id=page["id"]), json=body)
    assert anonymous.status_code == 401

    lacking = api.with_abilities(ALL_BUT[ability])
    assert call(lacking, route, page["id"]).status_code == 403

    if "{id}" in path:
        rival = make_api("rival")
        assert call(rival, route, page["id"]).status_code == 404
        assert call(api, route, "not-a-uuid").status_code == 404
        assert call(api, route, str(uuid.uuid4())).status_code == 404

    assert call(api, route, page["id"]).status_code in (200, 201)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_a_plan_without_bio_pages_is_402(api: Api, monkeypatch, route) -> None:
    page = data(api.post("/bio-pages", json={"handle": "mine"}), 201)
    monkeypatch.setitem(plans.PLANS, "pro", dataclasses.replace(plans.PLANS["pro"], bio_pages=False))
    response = call(api, route, page["id"])
    if route[0] == "DELETE":
        assert response.status_code == 200  # a downgraded team can still remove its pages
    else:
        assert response.status_code == 402, response.text
        assert response.json()["error"]["code"] == "plan_limit"


def test_page_limit_of_the_plan_is_402_in_both_shapes(make_api) -> None:
    free = make_api("small", plan="free")
    assert plans.PLANS["free"].max_bio_pages == 1
    first = data(free.post("/bio-pages", json={}), 201)
    assert free.post("/bio-pages", json={}).status_code == 402
    assert free.post("/bio/pages", json={"title": "Two"}).status_code == 402
    data(free.delete(f"/bio-pages/{first['id']}"))
    assert free.post("/bio/pages", json={"title": "Two"}).status_code == 201


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/bio/pages", {}, ["title"]),
        ("/bio/pages", {"title": ""}, ["title"]),
        ("/bio/pages", {"title": "x", "page_data": {"theme": "neon"}}, ["page_data.theme"]),
        ("/bio/pages", {"title": "x", "page_data": {"theme": {"accent": "red"}}}, ["page_data.theme"]),
        ("/bio/pages", {"title": "x", "page_data": {"avatar_url": "http://a.example/a.png"}}, ["page_data.avatar_url"]),
        (
            "/bio/pages",
            {"title": "x", "page_data": {"links": [{"url": "data:text/html,hi"}]}},
            ["page_data.links[0].url"],
        ),
        ("/bio/pages", {"title": "x", "page_data": {"links": [{"label": "no url"}]}}, ["page_data.links[0].url"]),
        ("/bio/pages", {"title": "x", "page_data": "nope"}, ["page_data"]),
        ("/bio-pages", {"theme": {"accent": "#4f46e5;}body{display:none"}}, ["theme.accent"]),
        ("/bio-pages", {"theme": {"accent": "blue"}}, ["theme.accent"]),
        ("/bio-pages", {"theme": {"button_style": "blob"}}, ["theme.button_style"]),
        ("/bio-pages", {"theme": {"palette": "</style>"}}, ["theme.palette"]),
        ("/bio-pages", {"seo": {"image": "javascript:alert(1)"}}, ["seo.image"]),
        ("/bio-pages", {"display_name": "x" * 101}, ["display_name"]),
        ("/bio-pages", {"avatar_path": "ftp://a.example/a.png"}, ["avatar_path"]),
        ("/bio-pages", {"blocks": [{"type": "video"}]}, ["blocks[0].type"]),
        ("/bio-pages", {"blocks": [{"type": "text", "config": {"text": "x" * 2001}}]}, ["blocks[0].config.text"]),
        ("/bio-pages", {"blocks": [{"type": "link", "url": "https://a.example", "icon": "<svg>"}]}, ["blocks[0].icon"]),
        ("/bio-pages", {"blocks": [{"type": "link", "url": "https://a.example", "icon": "x\n"}]}, ["blocks[0].icon"]),
        # What JSON allows but PostgreSQL and jsonb cannot hold: NUL, integers beyond 64 bits.
        ("/bio/pages", {"title": "a\x00b"}, ["title"]),
        ("/bio/pages", {"title": "x", "page_data": {"note\x00": 1}}, ["page_data"]),
        ("/bio-pages", {"headline": "\x00"}, ["headline"]),
        ("/bio-pages", {"blocks": [{"type": "text", "config": {"size": 2**70}}]}, ["blocks[0].config.size"]),
        ("/bio-pages", {"theme": {"accent": [{"x": -(2**64)}]}}, ["theme.accent[0].x"]),
    ],
)
def test_validation_names_the_field(api: Api, path: str, body: dict, fields: list[str]) -> None:
    assert error_fields(api.post(path, json=body)) == fields


def test_search_refuses_nul(api: Api) -> None:
    assert error_fields(api.get("/bio-pages/search", params={"q": "a\x00"})) == ["q"]


def test_malformed_json_is_400(api: Api) -> None:
    response = api.post("/bio-pages", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_concurrent_creates_cannot_both_pass_the_page_limit(make_api, env) -> None:
    """Two creates racing on the free plan's last page: the team lock lets exactly one through."""
    import asyncio

    from redis.asyncio import Redis

    from api.auth import Principal
    from api.bio import service
    from api.errors import PaymentRequired
    from api.settings import Settings
    from kit.postgres import create_pool

    free = make_api("racers", plan="free")
    principal = Principal(uuid.uuid4(), free.team_id, "racers", plans.PLANS["free"], frozenset({"bio:write"}))

    async def race() -> list[object]:
        settings = Settings.from_env(env)
        pool = await create_pool(settings.database_url, min_size=2)
        redis = Redis.from_url(settings.redis_url)
        ctx = service.Ctx(pool, redis, None, settings)  # type: ignore[arg-type]
        try:
            return await asyncio.gather(
                *(service.create_page(ctx, principal, service.Change()) for _ in range(4)), return_exceptions=True
            )
        finally:
            await redis.aclose()
            await pool.close()

    results = asyncio.run(race())
    assert sum(isinstance(r, uuid.UUID) for r in results) == 1
    assert sum(isinstance(r, PaymentRequired) for r in results) == 3
