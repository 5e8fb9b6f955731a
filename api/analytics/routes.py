"""Team-wide analytics: ``GET /analytics`` (JSON, or ``format=csv``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator
from starlette.responses import Response, StreamingResponse

from api.analytics import service
from api.analytics.export import csv_chunks
from api.analytics.responses import ok_response
from api.analytics.window import INTERVALS
from api.auth import Principal, require
from api.envelope import RateLimit, ok
from api.fields import NO_NUL, strict_json
from api.freshness import freshness
from api.openapi import error_responses
from api.params import DomainFilter, Labels, WindowParams, plain_text
from api.state import ApiRequest

router = APIRouter(tags=["analytics"], dependencies=[Depends(strict_json)])

GroupBy = Annotated[
    str | None,
    Query(
        description="What a row is: none (the total) | link | page (bio pages: views and block clicks; needs "
        "bio:analytics:read) | a breakdown dimension. Empty or left out: none.",
        json_schema_extra={"enum": ["", *service.GROUPS]},
    ),
]
IntervalParam = Annotated[
    str | None,
    Query(
        description="none (one row per group value) | hour | day | week (from Monday) | month, in `tz`. "
        "Empty or left out: none. Hourly series hold at most 2000 hours.",
        json_schema_extra={"enum": ["", *INTERVALS]},
    ),
]
_TEXT = {"pattern": NO_NUL}
DimensionValue = Annotated[
    str | None,
    Query(max_length=200, json_schema_extra=_TEXT),
    AfterValidator(plain_text),
]


async def analyst(request: ApiRequest, group_by: GroupBy = None) -> Principal:
    """Link data needs links:analytics:read; bio page rows need bio:analytics:read instead."""
    ability = "bio:analytics:read" if group_by == "page" else "links:analytics:read"
    return await require(ability)(request)


Analyst = Annotated[Principal, Depends(analyst)]


@router.get(
    "/analytics",
    summary="Team-wide analytics",
    responses={
        **ok_response(),
        **error_responses(404, 422, e404="No such link in this team (link_id)"),
    },
)
async def team_analytics(
    request: ApiRequest,
    principal: Analyst,
    window: WindowParams,
    group_by: GroupBy = None,
    interval: IntervalParam = None,
    link_id: Annotated[
        str | None, Query(max_length=64, description="Only this link's clicks.", json_schema_extra=_TEXT)
    ] = None,
    label: Labels = None,
    domain: DomainFilter = None,
    country: Annotated[DimensionValue, Query(description="Only clicks from this country (ISO code).")] = None,
    source: Annotated[DimensionValue, Query(description="Only clicks of this source: direct, qr, bio.")] = None,
    limit: Annotated[
        int, Query(ge=1, le=service.MAX_LIMIT, description="At most this many group values (top by clicks).")
    ] = service.DEFAULT_LIMIT,
    format: Annotated[
        Literal["json", "csv"], Query(description="json, or csv (a header row, then the rows).")
    ] = "json",
) -> Response:
    """Human clicks of the team's links, summed over the window, grouped by link, bio page or a
    breakdown dimension, and bucketed by `interval` in `tz`. Rows are ordered by clicks, most
    first, then by value (pages: by views); with an interval, by bucket first.
    Filters: `link_id`, `label` (repeat: all of them), `domain` (links on that hostname),
    `country`, `source`. The roll-ups count each dimension on its own, so two dimension filters, or a
    dimension filter with `group_by` another dimension, are a 422 saying why; filters do not apply
    to `group_by=page`. The window is whole hours clamped to the plan's retention (`data.from`,
    `data.to`); without `from`, 30 days (or the interval's default number of buckets).
    `meta.complete_through` and `meta.pending_events` tell "no clicks" from "not counted yet";
    with `format=csv` they are the `X-Complete-Through` and `X-Pending-Events` headers."""
    state = request.state
    pg, settings = state["pg"], state["settings"]
    req = service.Request(
        group_by=group_by,
        interval=interval,
        window=window,
        link_id=link_id,
        labels=tuple(label or ()),
        domain=domain,
        country=country,
        source=source,
        limit=limit,
    )
    fresh = await freshness(pg, state["redis"], settings.key_prefix, settings.event_shards)  # before the counters
    async with pg.acquire() as conn:
        answer = await service.analytics(conn, settings, principal.team_id, principal.plan, req)
    if format == "json":
        return ok(request, answer.data(), **fresh.meta())
    meta = fresh.meta()
    headers = {
        "Content-Disposition": f'attachment; filename="{answer.filename}"',
        "X-Complete-Through": str(meta["complete_through"] or ""),
        "X-Pending-Events": "" if meta["pending_events"] is None else str(meta["pending_events"]),
    }
    limit_state: RateLimit | None = request.scope.get("state", {}).get("rate_limit")
    if limit_state is not None:
        headers.update(limit_state.headers())
    return StreamingResponse(
        csv_chunks(answer.columns, answer.rows), media_type="text/csv; charset=utf-8", headers=headers
    )
