"""Team-wide analytics: which roll-up answers a request, the rows it returns, and their labels.

The roll-ups count each breakdown dimension on its own (clicks per country, clicks per device),
never pairs of them, and the team-wide tables do not know links. So a request is refused (422,
naming the field) when no roll-up holds its answer:

- two dimension filters (``country`` and ``source``);
- a dimension filter with ``group_by`` another dimension (``country=US&group_by=device``);
- any filter with ``group_by=page`` (filters select links; page rows are bio pages).

Everything else is answered exactly; see :mod:`api.analytics.queries` for the tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from api.analytics import queries
from api.analytics.queries import LinkFilter, Query, Source, Sums
from api.analytics.window import bucket_starts, cover, parse_analytics_window
from api.envelope import rfc3339
from api.errors import ValidationFailed
from api.links import queries as link_queries
from api.links.service import domain_filter, not_found, parse_id
from api.plans import Plan
from api.settings import Settings
from api.stats.labels import Names, label
from api.stats.routes import rfc3339_local
from api.stats.window import Window, WindowQuery, ceil_hour
from kit.postgres import Conn
from redirector.events import DIMENSIONS

GROUPS = ("none", "link", "page", *DIMENSIONS)
DIMENSION_FILTERS = ("country", "source")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_EMPTY = {"referrer": "(direct)"}  # how an empty value is shown; "(unknown)" for the other dimensions


@dataclass(frozen=True)
class Request:
    """The query parameters of ``GET /analytics`` (checked here, not by the schema alone)."""

    group_by: str | None = None
    interval: str | None = None
    window: WindowQuery = WindowQuery()
    link_id: str | None = None
    labels: tuple[str, ...] = ()
    domain: str | None = None
    country: str | None = None
    source: str | None = None
    limit: int = DEFAULT_LIMIT


@dataclass
class Answer:
    window: Window
    group: str
    filters: dict[str, Any]
    totals: dict[str, int]
    rows: list[dict[str, Any]]
    more: bool  # keys past the limit were left out
    limit: int

    @property
    def filename(self) -> str:
        start, end = self.window.start.astimezone(self.window.tz), self.window.end.astimezone(self.window.tz)
        return f"analytics-{self.group}-{self.window.interval}-{start:%Y%m%d}-{end:%Y%m%d}.csv"

    @property
    def columns(self) -> list[str]:
        """The fields of every row, in order (the CSV header)."""
        return columns(self.group, self.window.interval)

    def data(self) -> dict[str, Any]:
        return {
            "from": rfc3339(self.window.start),
            "to": rfc3339(self.window.end),
            "tz": self.window.tz.key,
            "interval": self.window.interval,
            "group_by": self.group,
            "filters": self.filters,
            "limit": self.limit,
            "more": self.more,
            "totals": self.totals,
            "rows": self.rows,
        }


def columns(group: str, interval: str) -> list[str]:
    """The fields of a row of ``group`` (what :func:`_rows` builds), in order."""
    head = ["start"] if interval != "none" else []
    if group == "none":
        return [*head, "clicks"]
    if group == "link":
        fields = ["value", "short_code", "domain", "short_url", "url"]
    elif group == "page":
        fields = ["value", "handle", "views"]
    else:
        fields = list(label({group: [{"value": ""}]}, Names())[group][0])
    return [*head, *fields, "clicks"]


def unknown_label(dimension: str) -> str:
    return _EMPTY.get(dimension, "(unknown)")


def _dimension_filters(req: Request) -> list[tuple[str, str]]:
    given: list[tuple[str, str]] = []
    for name in DIMENSION_FILTERS:
        raw = getattr(req, name)
        if raw is None or raw == "":
            continue
        value = "" if raw == unknown_label(name) else raw
        given.append((name, value.upper() if name == "country" else value))
    return given


async def _link_filter(conn: Conn, settings: Settings, team_id: uuid.UUID, req: Request) -> LinkFilter:
    link_id = None
    if req.link_id:
        # As GET /links/{id}/stats: another team's link (or no link) is a 404.
        link_id = parse_id(req.link_id)
        if await link_queries.get_link(conn, team_id, link_id) is None:
            raise not_found(req.link_id)
    domain = await domain_filter(conn, settings, team_id, req.domain)
    return LinkFilter(link_id, tuple(x for x in req.labels if x), domain)


def plan_query(
    team_id: uuid.UUID, group: str, links: LinkFilter, dims: Sequence[tuple[str, str]], window: Window, limit: int
) -> Query:
    """Pick the roll-up that answers the request, or refuse it (422) saying why none does."""
    if group not in GROUPS:
        raise ValidationFailed.field("group_by", f"must be one of {', '.join(GROUPS)}")
    if len(dims) > 1:
        raise ValidationFailed.field(
            "source",
            "cannot be combined with country: clicks are rolled up per dimension (by country, or by source), "
            "never per pair of them; filter by one",
        )
    dim = dims[0] if dims else None
    source: Source
    if group == "page":
        given = [name for name, on in (("link_id", links.link_id), ("label", links.labels)) if on]
        given += ["domain"] if links.domain is not False else []
        given += [dim[0]] if dim else []
        if given:
            raise ValidationFailed.field(
                given[0], "cannot be combined with group_by=page: the filters select links, and page rows are bio pages"
            )
        source, dimension = "subjects", None
    elif group in ("none", "link"):
        if dim is None:  # the team total: from the dimension every click has a value of, empty included
            source, dimension = ("subjects" if links.any or group == "link" else "team"), "source"
        else:
            source, dimension = ("breakdowns" if links.any or group == "link" else "team"), dim[0]
    else:
        if dim is not None and dim[0] != group:
            raise ValidationFailed.field(
                dim[0],
                f"cannot be combined with group_by={group}: clicks are rolled up per dimension (by {dim[0]}, "
                f"or by {group}), never per pair of them, so the {group} of the clicks with "
                f"{dim[0]}={dim[1] or unknown_label(dim[0])} is not known; group by {dim[0]} or by link instead",
            )
        source, dimension = ("breakdowns" if links.any else "team"), group
    starts = bucket_starts(window)
    return Query(
        team_id=team_id,
        source=source,
        group=group,
        dimension=dimension,
        value=dim[1] if dim else None,
        links=links,
        starts=starts,
        cover=cover(window, starts, hourly_only=source == "breakdowns", through=ceil_hour(datetime.now(UTC))),
        window=(window.start, window.end),
        limit=limit,
    )


async def analytics(
    conn: Conn, settings: Settings, team_id: uuid.UUID, plan: Plan, req: Request, *, max_limit: int = MAX_LIMIT
) -> Answer:
    """Answer ``GET /analytics`` for the team (every table read is scoped to ``team_id``); the CLI's
    export may ask for more than the API's ``max_limit`` rows."""
    group = req.group_by or "none"
    if group not in GROUPS:
        raise ValidationFailed.field("group_by", f"must be one of {', '.join(GROUPS)}")
    if not 1 <= req.limit <= max_limit:
        raise ValidationFailed.field("limit", f"must be between 1 and {max_limit}")
    window = parse_analytics_window(plan, req.window, req.interval)
    dims = _dimension_filters(req)
    links = await _link_filter(conn, settings, team_id, req)
    query = plan_query(team_id, group, links, dims, window, req.limit)
    sums = await queries.run(conn, query) if window.start < window.end else queries.Sums()
    rows = await _rows(conn, settings, query, sums, window)
    totals = {"clicks": sums.clicks, **({"views": sums.views} if group == "page" else {})}
    return Answer(window, group, _filters(req, links, dims), totals, rows, sums.keys > req.limit, req.limit)


def _filters(req: Request, links: LinkFilter, dims: Sequence[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if links.link_id is not None:
        out["link_id"] = str(links.link_id)
    if links.labels:
        out["label"] = list(links.labels)
    if req.domain:
        out["domain"] = req.domain
    for name, value in dims:
        out[name] = value
    return out


async def _rows(conn: Conn, settings: Settings, q: Query, sums: Sums, window: Window) -> list[dict[str, Any]]:
    """Labelled rows: per key (clicks desc, then key), or per bucket and key with an interval."""
    series = window.interval != "none"
    starts = q.starts
    if q.group == "none":
        clicks = [0] * len(starts)
        for _, i, c, _ in sums.rows:
            clicks[i] += c
        if not series:
            return [{"clicks": sums.clicks}]
        return [{"start": rfc3339_local(s, window.tz), "clicks": n} for s, n in zip(starts, clicks, strict=True)]
    per_key: dict[str, list[int]] = {}
    for k, _, c, w in sums.rows:
        total = per_key.setdefault(k, [0, 0])
        total[0] += c
        total[1] += w
    order = sorted(
        per_key, key=lambda k: (-per_key[k][1], -per_key[k][0], k) if q.group == "page" else (-per_key[k][0], k)
    )
    labels = await _labels(conn, settings, q, order)
    if not series:
        return [_row(labels[k], per_key[k][0], per_key[k][1], q.group) for k in order]
    rank = {k: n for n, k in enumerate(order)}
    ordered = sorted(sums.rows, key=lambda r: (r[1], rank[r[0]]))
    return [{"start": rfc3339_local(starts[i], window.tz), **_row(labels[k], c, w, q.group)} for k, i, c, w in ordered]


def _row(fields: dict[str, Any], clicks: int, views: int, group: str) -> dict[str, Any]:
    return {**fields, **({"views": views} if group == "page" else {}), "clicks": clicks}


async def _labels(conn: Conn, settings: Settings, q: Query, keys: list[str]) -> dict[str, dict[str, Any]]:
    """What each key means, as flat fields (``value`` first), so CSV rows are the JSON rows."""
    if q.group == "link":
        found = await queries.link_labels(conn, q.team_id, keys)
        public_host = urlsplit(settings.public_base_url).hostname
        out: dict[str, dict[str, Any]] = {}
        for k in keys:
            r = found.get(k)
            host = r["hostname"] if r is not None else None
            out[k] = {
                "value": k,
                "short_code": r["code"] if r is not None else None,
                "domain": (host or public_host) if r is not None else None,
                "short_url": settings.serving.short_url(r["code"], host) if r is not None else None,
                "url": r["url"] if r is not None else None,
            }
        return out
    if q.group == "page":
        handles = await queries.page_handles(conn, q.team_id, keys)
        return {k: {"value": k, "handle": handles.get(k)} for k in keys}
    names = Names()
    if q.group == "destination":
        names = Names(urls=await queries.destination_urls(conn, q.team_id, keys))
    elif q.group == "domain":
        names = Names(hostnames=await queries.domain_hostnames(conn, q.team_id, keys))
    elif q.group in ("rule", "variant") and q.links.link_id is not None:
        link = await link_queries.get_link(conn, q.team_id, q.links.link_id)
        if link is not None:  # one link: its rules say what an index means
            names = Names(default_url=link["destination"], rules=list(link["routing_rules"] or []))
    rows = [{"value": k} for k in keys]
    labelled = label({q.group: rows}, names)[q.group]
    out = {}
    for k, row in zip(keys, labelled, strict=True):
        row["value"] = k or unknown_label(q.group)
        out[k] = row
    return out
