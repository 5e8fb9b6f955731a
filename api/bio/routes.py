"""Bio page endpoints, both shapes over one store.

Blocks shape: ``/bio-pages`` (formspring). Page-data shape: ``/bio/pages`` (xqr). Every route
authenticates, checks its ability (403) and the plan (402), and scopes ids to the caller's team
(another team's page, or an id that is not a UUID, is a 404).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends
from starlette.responses import Response

from api.auth import Principal, require
from api.bio import queries, service, shapes
from api.bio import stats as bio_stats
from api.bio.schemas import BioPageCreate, BioPageUpdate, PageDataCreate, PageDataUpdate
from api.envelope import ok
from api.fields import strict_json
from api.freshness import freshness
from api.openapi import BODY_ERRORS, error_responses
from api.pagination import INT_CURSOR, PageParams, PerPage, cursor_param, page_params, paginate
from api.params import Interval, Search, SearchText, WindowParams
from api.state import ApiRequest
from api.stats.responses import BlockSeriesEnvelope, PageBreakdownsEnvelope, ok_response
from kit.postgres import Conn

router = APIRouter(tags=["bio pages"], dependencies=[Depends(strict_json)])


def bio(ability: str, *, plan: bool = True) -> Callable[[ApiRequest], Awaitable[Principal]]:
    """Dependency: the key must hold ``ability``, and (unless ``plan`` is False) the team's plan must
    include bio pages (402), checked before the body is looked at."""
    check = require(ability)

    async def dependency(request: ApiRequest) -> Principal:
        principal = await check(request)
        if plan:
            service.check_plan(principal)
        return principal

    return dependency


Reader = Annotated[Principal, Depends(bio("bio:read"))]
Writer = Annotated[Principal, Depends(bio("bio:write"))]
Deleter = Annotated[Principal, Depends(bio("bio:write", plan=False))]  # a downgraded team may still clean up
Analyst = Annotated[Principal, Depends(bio("bio:analytics:read"))]
SubmissionReader = Annotated[Principal, Depends(bio("bio:submissions:read"))]
Paging = Annotated[PageParams, Depends(page_params)]

_NOT_FOUND = "No such bio page in this team (or not a page id)"
_PLAN = "The plan does not include bio pages, or its page limit is reached"


def responses(*codes: int, ok: str | None = None, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """The statuses of a bio route: ``ok`` describes the success; 402 unless the route skips the plan check."""
    out = error_responses(*codes, e402=_PLAN, e404=_NOT_FOUND)
    if ok is not None:
        out[status] = {"description": ok}
    return out


def ctx(request: ApiRequest) -> service.Ctx:
    state = request.state
    return service.Ctx(state["pg"], state["redis"], state["arq"], state["settings"])


async def _view(request: ApiRequest, principal: Principal, page_id: str) -> service.PageView:
    async with request.state["pg"].acquire() as conn:
        return await service.load(conn, principal.team_id, service.page_uuid(page_id))


async def _page_stats(
    request: ApiRequest,
    principal: Principal,
    page_id: str,
    read: Callable[[Conn, service.PageView], Awaitable[dict[str, Any]]],
) -> Response:
    """A page's stats answer: the page (404 for another team's), the freshness of the counters, then
    ``read`` of the counters (after the freshness check, so complete_through holds for them)."""
    view = await _view(request, principal, page_id)
    settings = request.state["settings"]
    fresh = await freshness(request.state["pg"], request.state["redis"], settings.key_prefix, settings.event_shards)
    async with request.state["pg"].acquire() as conn:
        data = await read(conn, view)
    return ok(request, data, **fresh.meta())


def _deleted(request: ApiRequest) -> Response:
    """``{"deleted": true}`` at the top level (as the blocks-shape vendor answers), inside the envelope too."""
    response = ok(request, {"deleted": True})
    body = {"deleted": True, **orjson.loads(response.body)}
    response.body = orjson.dumps(body)
    response.headers["content-length"] = str(len(response.body))
    return response


# --- blocks shape --------------------------------------------------------------------------------


@router.get("/bio-pages", summary="List bio pages (newest first)", responses=responses(402, 422))
async def list_bio_pages(request: ApiRequest, principal: Reader, paging: Paging, search: Search = None) -> Response:
    async with request.state["pg"].acquire() as conn:
        rows = await queries.list_pages(
            conn, principal.team_id, search=search, limit=paging.per_page + 1, after=paging.after
        )
        page, cursor = paginate(rows, paging.per_page)  # type: ignore[arg-type]
        views = await service.views_of(conn, page, with_blocks=False)  # type: ignore[arg-type]
    settings = request.state["settings"]
    data = [
        shapes.bio_page_resource(v, settings, blocks=False, blocks_count=row["blocks_count"])
        for v, row in zip(views, page, strict=True)
    ]
    return ok(request, data, next_cursor=cursor)


@router.post(
    "/bio-pages",
    status_code=201,
    summary="Create a bio page (a draft)",
    responses=responses(402, *BODY_ERRORS, status=201),
)
async def create_bio_page(request: ApiRequest, principal: Writer, body: BioPageCreate) -> Response:
    page_id = await service.create_page(ctx(request), principal, shapes.change_from_blocks_shape(body))
    view = await _view(request, principal, str(page_id))
    return ok(request, shapes.bio_page_resource(view, request.state["settings"]), 201)


@router.get("/bio-pages/search", summary="Search bio pages (at most 50 light rows)", responses=responses(402, 422))
async def search_bio_pages(request: ApiRequest, principal: Reader, q: SearchText = "") -> Response:
    async with request.state["pg"].acquire() as conn:
        rows = await queries.search_pages(conn, principal.team_id, q.strip())
    data = [
        {"id": str(r["id"]), "handle": r["handle"], "display_name": r["display_name"], "headline": r["headline"]}
        for r in rows
    ]
    return ok(request, data)


@router.get("/bio-pages/{page_id}", summary="Show a bio page with its blocks", responses=responses(402, 404))
async def show_bio_page(request: ApiRequest, principal: Reader, page_id: str) -> Response:
    view = await _view(request, principal, page_id)
    return ok(request, shapes.bio_page_resource(view, request.state["settings"]))


@router.patch(
    "/bio-pages/{page_id}",
    summary="Update a bio page; blocks replace the set",
    responses=responses(402, 404, *BODY_ERRORS),
)
async def update_bio_page(request: ApiRequest, principal: Writer, page_id: str, body: BioPageUpdate) -> Response:
    pid = service.page_uuid(page_id)
    await service.update_page(ctx(request), principal, pid, shapes.change_from_blocks_shape(body))
    view = await _view(request, principal, page_id)
    return ok(request, shapes.bio_page_resource(view, request.state["settings"]))


@router.delete("/bio-pages/{page_id}", summary="Delete a bio page (stops serving at once)", responses=responses(404))
async def delete_bio_page(request: ApiRequest, principal: Deleter, page_id: str) -> Response:
    await service.delete_page(ctx(request), principal, service.page_uuid(page_id))
    return _deleted(request)


@router.get(
    "/bio-pages/{page_id}/stats/counters",
    summary="Views, visitors and clicks of a page",
    responses={**ok_response("The page's counters; meta says how fresh they are"), **responses(402, 404, 422)},
)
async def bio_page_counters(request: ApiRequest, principal: Analyst, page_id: str, query: WindowParams) -> Response:
    """Counters over the window (default: all the retained history), views in the last 7 days, all time.
    `meta.complete_through` and `meta.pending_events` tell "no views" from "not counted yet"."""
    return await _page_stats(
        request, principal, page_id, lambda conn, view: bio_stats.counters(conn, principal.plan, view, query)
    )


@router.get(
    "/bio-pages/{page_id}/stats/views",
    summary="Views and visitors over time",
    responses={**ok_response("The page's series; meta says how fresh it is"), **responses(402, 404, 422)},
)
async def bio_page_views(
    request: ApiRequest, principal: Analyst, page_id: str, query: WindowParams, interval: Interval = None
) -> Response:
    """Views and visitors per bucket in `tz`; without `from`, 24 hours, 30 days or 12 weeks up to `to`.
    `meta.complete_through` and `meta.pending_events` tell "no views" from "not counted yet"."""
    return await _page_stats(
        request, principal, page_id, lambda conn, view: bio_stats.views(conn, principal.plan, view, query, interval)
    )


@router.get(
    "/bio-pages/{page_id}/stats/breakdowns",
    summary="Views of a page by country, device, referrer, source, region, ...",
    responses={
        200: {"model": PageBreakdownsEnvelope, "description": "The page's breakdowns; meta says how fresh they are"},
        **responses(402, 404, 422),
    },
)
async def bio_page_breakdowns(request: ApiRequest, principal: Analyst, page_id: str, query: WindowParams) -> Response:
    """The top 10 values of each dimension of the page's human views over the window (default: all
    the retained history): country, device, os, browser, referrer, source, UTM source, medium and
    campaign, region, city, network and team domain.
    `meta.complete_through` and `meta.pending_events` tell "no views" from "not counted yet"."""
    return await _page_stats(
        request, principal, page_id, lambda conn, view: bio_stats.breakdowns(conn, principal.plan, view, query)
    )


@router.get(
    "/bio-pages/{page_id}/stats/blocks",
    summary="Clicks of each block over time",
    responses={
        200: {"model": BlockSeriesEnvelope, "description": "A series per block; meta says how fresh they are"},
        **responses(402, 404, 422),
    },
)
async def bio_page_blocks(
    request: ApiRequest, principal: Analyst, page_id: str, query: WindowParams, interval: Interval = None
) -> Response:
    """Clicks and visitors of each block per bucket in `tz`, in the blocks' sort order; without
    `from`, 24 hours, 30 days or 12 weeks up to `to`, as for the page's views.
    `meta.complete_through` and `meta.pending_events` tell "no clicks" from "not counted yet"."""
    return await _page_stats(
        request, principal, page_id, lambda conn, view: bio_stats.blocks(conn, principal.plan, view, query, interval)
    )


@router.get(
    "/bio-pages/{page_id}/submissions",
    summary="Form submissions of a page (newest first)",
    responses=responses(402, 404, 422),
)
async def bio_page_submissions(
    request: ApiRequest,
    principal: SubmissionReader,
    page_id: str,
    per_page: PerPage = 25,
    cursor: Annotated[str | None, cursor_param(INT_CURSOR)] = None,
) -> Response:
    view = await _view(request, principal, page_id)
    async with request.state["pg"].acquire() as conn:
        data, next_cursor = await bio_stats.submissions(conn, view, per_page=per_page, cursor=cursor)
    return ok(request, data, next_cursor=next_cursor)


# --- page-data shape -----------------------------------------------------------------------------


def _page_data(request: ApiRequest, view: service.PageView) -> dict[str, Any]:
    return shapes.page_data_resource(view, request.state["settings"])


@router.post(
    "/bio/pages",
    status_code=201,
    summary="Create a page (page-data shape; a draft)",
    responses=responses(402, *BODY_ERRORS, status=201),
)
async def create_page(request: ApiRequest, principal: Writer, body: PageDataCreate) -> Response:
    page_id = await service.create_page(ctx(request), principal, shapes.change_from_page_data_shape(body))
    return ok(request, _page_data(request, await _view(request, principal, str(page_id))), 201)


@router.get("/bio/pages", summary="List pages (page-data shape, newest first)", responses=responses(402, 422))
async def list_pages(request: ApiRequest, principal: Reader, paging: Paging) -> Response:
    async with request.state["pg"].acquire() as conn:
        rows = await queries.list_pages(conn, principal.team_id, search=None, limit=paging.per_page + 1,
                                        after=paging.after)  # fmt: skip
        page, cursor = paginate(rows, paging.per_page)  # type: ignore[arg-type]
        views = await service.views_of(conn, page)  # type: ignore[arg-type]
    return ok(request, [_page_data(request, v) for v in views], next_cursor=cursor)


@router.get("/bio/pages/{page_id}", summary="Show a page (page-data shape)", responses=responses(402, 404))
async def show_page(request: ApiRequest, principal: Reader, page_id: str) -> Response:
    return ok(request, _page_data(request, await _view(request, principal, page_id)))


@router.patch(
    "/bio/pages/{page_id}", summary="Update a page (page-data shape)", responses=responses(402, 404, *BODY_ERRORS)
)
async def update_page(request: ApiRequest, principal: Writer, page_id: str, body: PageDataUpdate) -> Response:
    pid = service.page_uuid(page_id)
    await service.update_page(ctx(request), principal, pid, shapes.change_from_page_data_shape(body))
    return ok(request, _page_data(request, await _view(request, principal, page_id)))


@router.delete("/bio/pages/{page_id}", summary="Delete a page (page-data shape)", responses=responses(404))
async def delete_page(request: ApiRequest, principal: Deleter, page_id: str) -> Response:
    await service.delete_page(ctx(request), principal, service.page_uuid(page_id))
    return _deleted(request)


@router.post("/bio/pages/{page_id}/publish", summary="Publish a page", responses=responses(402, 404))
async def publish_page(request: ApiRequest, principal: Writer, page_id: str) -> Response:
    await service.set_published(ctx(request), principal, service.page_uuid(page_id), True)
    return ok(request, _page_data(request, await _view(request, principal, page_id)))


@router.post("/bio/pages/{page_id}/unpublish", summary="Unpublish a page", responses=responses(402, 404))
async def unpublish_page(request: ApiRequest, principal: Writer, page_id: str) -> Response:
    await service.set_published(ctx(request), principal, service.page_uuid(page_id), False)
    return ok(request, _page_data(request, await _view(request, principal, page_id)))
