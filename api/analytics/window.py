"""The window of a team-wide analytics request, and how the summary tables cover it.

``from``/``to``/``tz`` are parsed and clamped to the plan's retention by :mod:`api.stats.window`,
like every stats window. Team analytics add two intervals: ``none`` (one total over the window,
the default; without ``from`` the last 30 days) and ``month`` (local calendar months in ``tz``;
without ``from`` 12 of them).

Counters are summed from whole UTC days (``stats_daily``, ``stats_team_daily``) where a bucket
holds them, and from whole hours (``stats_hourly``, ``stats_team_hourly``) at its edges:
:func:`cover` splits a window's buckets into the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from api.errors import ValidationFailed
from api.plans import Plan
from api.stats.window import (
    Window,
    WindowQuery,
    ceil_hour,
    clamp_to_retention,
    floor_hour,
    parse_window,
)
from api.stats.window import (
    bucket_starts as stats_bucket_starts,
)

INTERVALS = ("none", "hour", "day", "week", "month")
DEFAULT_MONTHS = 12  # without ``from``, a month series has this many months up to ``to``


def parse_analytics_window(
    plan: Plan, query: WindowQuery, interval: str | None, *, now: datetime | None = None
) -> Window:
    """Check and resolve ``from``/``to``/``tz``/``interval`` (``none`` when empty); a 422 names the field."""
    interval = interval or "none"
    if interval not in INTERVALS:
        raise ValidationFailed.field("interval", f"must be one of {', '.join(INTERVALS)}")
    now = now or datetime.now(UTC)
    if interval in ("hour", "day", "week"):
        return parse_window(plan, query, interval, now=now)
    # none: the window of a daily series (30 local days by default); month: 12 local months.
    window = parse_window(plan, query, "day", now=now)
    if interval == "month" and not query.start:
        last = (window.end - timedelta(microseconds=1)).astimezone(window.tz).date()
        first = _add_months(last.replace(day=1), 1 - DEFAULT_MONTHS)
        start = datetime(first.year, first.month, 1, tzinfo=window.tz).astimezone(UTC)
        lo, hi = clamp_to_retention(plan, floor_hour(start), ceil_hour(window.end), now)
        window = Window(lo, hi, window.tz, "day")
    return Window(window.start, window.end, window.tz, interval)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def bucket_starts(window: Window) -> list[datetime]:
    """UTC starts of the local buckets covering the window (the first may begin before it); one
    bucket, starting at the window, for ``none``."""
    if window.start >= window.end:
        return []
    if window.interval == "none":
        return [window.start]
    if window.interval != "month":
        return stats_bucket_starts(window)
    local = window.start.astimezone(window.tz).date().replace(day=1)
    starts: list[datetime] = []
    while True:
        moment = datetime(local.year, local.month, 1, tzinfo=window.tz).astimezone(UTC)
        if moment >= window.end and starts:
            return starts
        starts.append(moment)
        local = _add_months(local, 1)


@dataclass(frozen=True)
class Cover:
    """The window as UTC day ranges ``[first, last)`` of the daily tables and hour ranges
    ``[start, end)`` of the hourly tables: disjoint, together exactly the window, and every day
    in them inside one bucket (rows are put in buckets by their time)."""

    days: list[tuple[date, date]]
    hours: list[tuple[datetime, datetime]]


def _floor_day(moment: datetime) -> datetime:
    return moment.replace(hour=0)  # moments here are on the hour, in UTC


def cover(
    window: Window, starts: list[datetime], *, hourly_only: bool = False, through: datetime | None = None
) -> Cover:
    """Split each bucket (clipped to the window) into its whole UTC days and its edge hours.

    Nothing is counted at or after ``through`` (the end of the current hour: no event is stamped
    later), so the last bucket, when it reaches it, takes its unfinished UTC day from the daily tables:
    that day's row holds exactly its hours so far. A "last 30 days" window then reads hours only
    at its start."""
    days: list[tuple[date, date]] = []
    hours: list[tuple[datetime, datetime]] = []
    if not starts:  # an empty window (clamped away by the retention)
        return Cover(days, hours)

    def add_hours(lo: datetime, hi: datetime) -> None:
        if lo >= hi:
            return
        if hours and hours[-1][1] == lo:
            hours[-1] = (hours[-1][0], hi)
        else:
            hours.append((lo, hi))

    # A bucket holds the hours that start in it (a zone at +05:30 starts its days at :30 UTC), so
    # its hours run from its start's ceiling hour, as width_bucket puts an hour's row.
    bounds = [*starts[1:], window.end]
    for start, end in zip(starts, bounds, strict=True):
        lo, hi = max(ceil_hour(start), window.start), min(ceil_hour(end), window.end)
        if lo >= hi:
            continue
        first = _floor_day(lo) if lo == _floor_day(lo) else _floor_day(lo) + timedelta(days=1)
        last = _floor_day(hi)
        if not hourly_only and through is not None and end == bounds[-1] and hi >= through and lo <= last < hi:
            last += timedelta(days=1)  # the unfinished day, whole: its hours from `through` on are empty
            hi = last
        if hourly_only or first >= last:
            add_hours(lo, hi)
            continue
        add_hours(lo, first)
        if days and days[-1][1] == first.date():
            days[-1] = (days[-1][0], last.date())
        else:
            days.append((first.date(), last.date()))
        add_hours(last, hi)
    return Cover(days, hours)
