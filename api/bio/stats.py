"""Page analytics responses and form submissions.

Subjects: the page id (views, visitors, and clicks = every block click of the page) and each block
id (clicks, visitors). Windows and series come from :mod:`api.stats.window` and
:mod:`api.stats.queries`, as for links. The page's breakdowns are of its human views, in the
dimensions a view has: not the routing rule, split variant or destination, which only link
clicks carry.
"""

from __future__ import annotations

from typing import Any

from api.bio.service import PageView
from api.envelope import rfc3339
from api.errors import ValidationFailed
from api.pagination import decode_cursor, encode_cursor
from api.plans import Plan
from api.stats import queries
from api.stats.labels import Names, label
from api.stats.window import WindowQuery, last_days, parse_window
from kit.postgres import Conn
from redirector.events import DIMENSIONS

LINK_ONLY = ("rule", "variant", "destination")
PAGE_DIMENSIONS = tuple(d for d in DIMENSIONS if d not in LINK_ONLY)


async def counters(conn: Conn, plan: Plan, view: PageView, query: WindowQuery) -> dict[str, Any]:
    """Views, distinct visitors, clicks and per-block clicks in the window (default: all the
    retained history); views in the last 7 days; all time."""
    window = parse_window(plan, query, all_retained=True)
    page_id = view.page["id"]
    counts = await queries.totals(conn, [page_id, *(b["id"] for b in view.blocks)], window.start, window.end)
    page = counts[page_id]
    last_7 = (await queries.totals(conn, [page_id], *last_days(plan, 7)))[page_id]
    return {
        "from": rfc3339(window.start),
        "to": rfc3339(window.end),
        "tz": window.tz.key,
        "views": page.views,
        "visitors": page.visitors,
        "clicks": page.clicks,
        "blocks": [
            {"id": str(b["id"]), "type": b["type"], "label": b["label"], "clicks": counts[b["id"]].clicks}
            for b in view.blocks
        ],
        "views_last_7_days": last_7.views,
        "views_all_time": view.views,
        "clicks_all_time": view.clicks,
    }


async def views(conn: Conn, plan: Plan, view: PageView, query: WindowQuery, interval: str | None) -> dict[str, Any]:
    """Views and distinct visitors per local hour, day or week over the window; each bucket has its
    UTC ``start`` and its ``local`` start. A date ``to`` is exclusive here."""
    window = parse_window(plan, query, interval)
    series = await queries.series(conn, view.page["id"], window)
    total = queries.combine(counts for _, counts in series)
    return {
        "from": rfc3339(window.start),
        "to": rfc3339(window.end),
        "tz": window.tz.key,
        "interval": window.interval,
        "views": total.views,
        "visitors": total.visitors,
        "series": [
            {
                "start": rfc3339(start),
                "local": start.astimezone(window.tz).isoformat(),
                "views": c.views,
                "visitors": c.visitors,
            }
            for start, c in series
        ],
    }


async def breakdowns(conn: Conn, plan: Plan, view: PageView, query: WindowQuery) -> dict[str, Any]:
    """The top 10 values of each dimension of the page's views in the window (default: all the
    retained history), each ``{"value", "views"}``; regions, cities and domains labelled as for links."""
    window = parse_window(plan, query, all_retained=True)
    page_id = view.page["id"]
    tops = await queries.breakdowns(conn, page_id, window.start, window.end, dimensions=PAGE_DIMENSIONS, count="views")
    domains = [r["value"] for r in tops["domain"]]
    hostnames = await queries.domain_hostnames(conn, view.page["team_id"], domains) if domains else {}
    total = (await queries.totals(conn, [page_id], window.start, window.end))[page_id]
    return {
        "from": rfc3339(window.start),
        "to": rfc3339(window.end),
        "tz": window.tz.key,
        "views": total.views,
        "breakdowns": label(tops, Names(hostnames=hostnames)),
    }


async def blocks(conn: Conn, plan: Plan, view: PageView, query: WindowQuery, interval: str | None) -> dict[str, Any]:
    """Clicks and distinct visitors of each block per local hour, day or week over the window (in
    ``sort_order``), with the same buckets as :func:`views`."""
    window = parse_window(plan, query, interval)
    series = await queries.series_of(conn, [b["id"] for b in view.blocks], window)
    out = []
    for b in view.blocks:
        buckets = series[b["id"]]
        total = queries.combine(c for _, c in buckets)
        out.append(
            {
                "id": str(b["id"]),
                "type": b["type"],
                "label": b["label"],
                "clicks": total.clicks,
                "visitors": total.visitors,
                "series": [
                    {
                        "start": rfc3339(start),
                        "local": start.astimezone(window.tz).isoformat(),
                        "clicks": c.clicks,
                        "visitors": c.visitors,
                    }
                    for start, c in buckets
                ],
            }
        )
    return {
        "from": rfc3339(window.start),
        "to": rfc3339(window.end),
        "tz": window.tz.key,
        "interval": window.interval,
        "clicks": sum(b["clicks"] for b in out),
        "blocks": out,
    }


async def submissions(
    conn: Conn, view: PageView, *, per_page: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Form submissions of the page, newest first, with an opaque cursor."""
    if not 1 <= per_page <= 100:
        raise ValidationFailed.field("per_page", "must be between 1 and 100")
    after = decode_cursor(cursor, int) if cursor else None
    rows = await conn.fetch(
        "SELECT id, block_id, data, created_at FROM form_submissions WHERE page_id = $1 "
        "AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) ORDER BY created_at DESC, id DESC LIMIT $4",
        view.page["id"],
        after[0] if after else None,
        after[1] if after else 0,
        per_page + 1,
    )
    page = rows[:per_page]
    data = [
        {
            "id": str(r["id"]),
            "block_id": str(r["block_id"]) if r["block_id"] else None,
            "data": r["data"],
            "created_at": rfc3339(r["created_at"]),
        }
        for r in page
    ]
    next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["id"]) if len(rows) > per_page else None
    return data, next_cursor
