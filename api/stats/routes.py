"""Link analytics: ``GET /links/{id}/stats`` and ``GET /links/{id}/stats/variants``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from starlette.responses import Response

from api.auth import Principal, require
from api.envelope import ok, rfc3339
from api.fields import strict_json
from api.freshness import Freshness, freshness
from api.links import service
from api.links.objects import sent_urls
from api.links.responses import errors
from api.params import Interval, WindowParams
from api.state import ApiRequest
from api.stats import queries
from api.stats.labels import Names, label
from api.stats.responses import VariantsEnvelope, ok_response
from api.stats.variants import split_results
from api.stats.window import parse_window
from kit.postgres import Conn
from redirector.events import destination_id

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
    The breakdowns also hold the routing rule that matched (`none`: the default URL), the split
    variant, the destination sent (with its URL), UTM source, medium and campaign, region and city
    (split into `country`, `region`, `city`), network (`datacenter` or `other`) and team domain.
    Without `from`, the series has 24 hours, 30 days or 12 weeks up to `to`; a date `to` includes
    that day. The window is resolved to whole hours and clamped to the plan's retention;
    `data.from`/`data.to` give what was used.
    Bots and prefetches are not clicks; visitors are counted once per day (the visitor hash rotates
    daily). Series buckets are labelled with their local start (`2026-11-01T00:00:00-04:00`).
    `meta.complete_through` and `meta.pending_events` tell "no clicks" from "not counted yet"."""
    pg = request.state["pg"]
    link = await service.get_link(pg, principal.team_id, link_id)  # 404 for another team's link
    window = parse_window(principal.plan, query, interval)
    fresh = await _freshness(request)  # before the counters
    async with pg.acquire() as conn:
        series = await queries.series(conn, link["id"], window)
        tops = await queries.breakdowns(conn, link["id"], window.start, window.end)
        tops = label(tops, await _names(conn, link, tops))
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


@router.get(
    "/{link_id}/stats/variants",
    summary="Per-variant results of a link's split rules",
    responses={
        200: {"model": VariantsEnvelope, "description": "Each split rule's variants; meta says how fresh they are"},
        **errors(404, 422),
    },
)
async def link_variants(link_id: str, request: ApiRequest, principal: Analyst, query: WindowParams) -> Response:
    """For each split rule the link has now: per variant its URL, configured weight, human clicks in
    the window and share of the rule's clicks, and `srm`, a chi-square test of the clicks against
    the weights. `srm.mismatch` is true when `p_value` < 0.001: the split is not sending traffic as
    configured (broken bucketing, bots, or weights changed inside the window); null when some
    variant expects fewer than 5 clicks (`reason` says so). Same window as the link's stats
    (without `from`: 30 days up to `to`). Visitors per variant are not counted."""
    pg = request.state["pg"]
    link = await service.get_link(pg, principal.team_id, link_id)
    window = parse_window(principal.plan, query)
    fresh = await _freshness(request)
    rules = list(link["routing_rules"] or [])
    async with pg.acquire() as conn:
        counts = await queries.dimension_counts(conn, link["id"], "variant", window.start, window.end)
    data = {
        "link_id": str(link["id"]),
        "from": rfc3339(window.start),
        "to": rfc3339(window.end),
        "tz": window.tz.key,
        "rules": split_results(rules, counts),
    }
    return ok(request, data, **fresh.meta())


async def _freshness(request: ApiRequest) -> Freshness:
    settings = request.state["settings"]
    return await freshness(request.state["pg"], request.state["redis"], settings.key_prefix, settings.event_shards)


async def _names(conn: Conn, link: Any, tops: dict[str, list[dict[str, Any]]]) -> Names:
    """What the labels of the link's breakdown rows need: its current URLs and rules, the URLs of
    the destinations shown (the current ones are known without a lookup) and domain hostnames."""
    rules = list(link["routing_rules"] or [])
    current = {destination_id(u): u for u in sent_urls(link["destination"], rules)}
    shown = [r["value"] for r in tops.get("destination", [])]
    missing = [d for d in shown if d not in current]
    urls = {**current, **(await queries.destination_urls(conn, link["id"], missing) if missing else {})}
    domains = [r["value"] for r in tops.get("domain", [])]
    hostnames = await queries.domain_hostnames(conn, link["team_id"], domains) if domains else {}
    return Names(default_url=link["destination"], rules=rules, urls=urls, hostnames=hostnames)
