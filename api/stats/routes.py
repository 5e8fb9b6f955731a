"""Link analytics: ``GET /links/{id}/stats``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from starlette.responses import Response

from api.auth import Principal, require
from api.envelope import ok, rfc3339
from api.fields import strict_json
from api.freshness import freshness
from api.links import service
from api.links.responses import errors
from api.params import Interval, WindowParams
from api.state import ApiRequest
from api.stats import queries
from api.stats.responses import ok_response
from api.stats.window import parse_window

router = APIRouter(prefix="/links", tags=["analytics"], dependencies=[Depends(strict_json)])

Analyst = Annotated[Principal, Depends(require("links:analytics:read"))]


def rfc3339_local(moment: datetime, tz: ZoneInfo) -> str:
    """A bucket label: its local start with the zone's offset (``Z`` for UTC)."""
    text = moment.astimezone(tz).isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@router.get(
    "/{link_id}/stats",
    summary="Analytics of a link",
    responses={**ok_response("The link's counters; meta says how fresh they are"), **errors(404, 422)},
)
async def link_stats(
    link_id: str, request: ApiRequest, principal: Analyst, query: WindowParams, interval: Interval = None
) -> Response:
    """Human clicks, distinct visitors and bots over the window, a time series bucketed in `tz`, and
    the top countries, devices, OSes, browsers, referrer hosts and sources (direct, qr, bio).
    Without `from`, the series has 24 hours, 30 days or 12 weeks up to `to`; a date `to` includes
    that day. The window is resolved to whole hours and clamped to the plan's retention;
    `data.from`/`data.to` give what was used.
    Bots and prefetches are not clicks; visitors are counted once per day (the visitor hash rotates
    daily). Series buckets are labelled with their local start (`2026-11-01T00:00:00-04:00`).
    `meta.complete_through` and `meta.pending_events` tell "no clicks" from "not counted yet"."""
    pg = request.state["pg"]
    link = await service.get_link(pg, principal.team_id, link_id)  # 404 for another team's link
    window = parse_window(principal.plan, query, interval)
    fresh = await freshness(
        pg, request.state["redis"], request.state["settings"].key_prefix, request.state["settings"].event_shards
    )  # before the counters
    async with pg.acquire() as conn:
        series = await queries.series(conn, link["id"], window)
        tops = await queries.breakdowns(conn, link["id"], window.start, window.end)
    summary = queries.combine(counts for _, counts in series)
    data = {
        "link_id": str(link["id"]),
        "from": rfc3339(window.start),
        "to": rfc3339(window.end),
        "tz": window.tz.key,
        "interval": window.interval,
        "totals": {"clicks": summary.clicks, "unique_visitors": summary.visitors, "bots": summary.bots},
        "all_time": {
            "clicks": link["scan_count"],
            "last_clicked_at": rfc3339(link["last_scan_at"]),
        },
        "series": [
            {
                "start": rfc3339_local(start, window.tz),
                "clicks": c.clicks,
                "unique_visitors": c.visitors,
                "bots": c.bots,
            }
            for start, c in series
        ],
        "breakdowns": tops,
    }
    return ok(request, data, **fresh.meta())
