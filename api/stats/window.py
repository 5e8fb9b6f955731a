"""The time window of a stats request: ``from``/``to``/``tz``/``interval``, checked and clamped.

Every stats endpoint (links and bio pages) resolves its window here. Counters are kept per UTC
hour, so a window is resolved to whole hours: ``from`` is floored and ``to`` ceiled to the hour
(``to`` is exclusive). ``from``/``to`` are RFC 3339 timestamps, or plain dates (``2026-11-01``)
meaning local midnight in ``tz``. A timestamp without an offset is local time in ``tz``. The
window is then clamped to the plan's analytics retention, counted back from now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from api.errors import ValidationFailed
from api.plans import Plan

INTERVALS = ("hour", "day", "week")
MAX_HOURS = 2000  # hourly buckets in one series
DEFAULT_BUCKETS = {"hour": 24, "day": 30, "week": 12}  # without ``from``: this many buckets up to ``to``
# ``from`` and ``to`` must fall in this range: nothing is counted outside it, and the ends of
# datetime's range (year 1 or 9999 shifted by a time zone) cannot even be computed.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    start: datetime  # UTC, on the hour
    end: datetime  # UTC, on the hour, exclusive
    tz: ZoneInfo
    interval: str


@dataclass(frozen=True)
class WindowQuery:
    """The raw ``from``/``to``/``tz`` query parameters, checked by :func:`parse_window`."""

    start: str | None = None
    end: str | None = None
    tz: str | None = None


def parse_tz(name: str | None) -> ZoneInfo:
    """An IANA zone (``UTC`` when omitted); 422 for an unknown name."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed.field("tz", "must be an IANA time zone name such as Europe/Paris") from None


def parse_instant(field: str, value: str, tz: ZoneInfo, *, next_day: bool = False) -> datetime:
    """An RFC 3339 timestamp or a date (local midnight; with ``next_day``, the midnight after it), in UTC."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text) + timedelta(days=1 if next_day else 0)
            moment = datetime(day.year, day.month, day.day, tzinfo=tz)
        else:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
        moment = moment.astimezone(UTC)
    except ValueError:
        raise ValidationFailed.field(field, "must be an RFC 3339 timestamp or a date (YYYY-MM-DD)") from None
    except OverflowError:  # the very ends of datetime's range, moved by a time zone or a day
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise ValidationFailed.field(field, "must be between 1970-01-01 and 2100-01-01")
    return moment


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + timedelta(hours=1)


def clamp_to_retention(plan: Plan, start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime]:
    """Cut ``start`` to the first whole hour of the plan's retention (and ``end`` to at least ``start``)."""
    start = max(start, ceil_hour(now - timedelta(days=plan.retention_days)))
    return start, max(start, end)


def last_days(plan: Plan, days: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The whole hours of the last ``days`` days up to now, clamped to the retention."""
    now = now or datetime.now(UTC)
    return clamp_to_retention(plan, floor_hour(now - timedelta(days=days)), ceil_hour(now), now)


def default_start(end: datetime, tz: ZoneInfo, interval: str) -> datetime:
    """Start of the bucket holding ``end`` (local time), moved back to make DEFAULT_BUCKETS buckets."""
    n = DEFAULT_BUCKETS[interval] - 1
    if interval == "hour":
        return floor_hour(end - timedelta(microseconds=1)) - timedelta(hours=n)
    day = (end - timedelta(microseconds=1)).astimezone(tz).date()
    if interval == "week":
        day -= timedelta(days=day.weekday() + 7 * n)
    else:
        day -= timedelta(days=n)
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def parse_window(
    plan: Plan,
    query: WindowQuery,
    interval: str | None = None,
    *,
    all_retained: bool = False,
    now: datetime | None = None,
) -> Window:
    """Check and resolve query parameters into a :class:`Window`; a 422 names the bad field.

    Without ``from`` the window holds DEFAULT_BUCKETS buckets, or with ``all_retained`` all the
    retained history. A date-only ``to`` includes that
    whole day in the caller's time zone.
    """
    interval = interval or "day"
    if interval not in INTERVALS:
        raise ValidationFailed.field("interval", f"must be one of {', '.join(INTERVALS)}")
    zone = parse_tz(query.tz)
    now = now or datetime.now(UTC)
    hi = parse_instant("to", query.end, zone, next_day=True) if query.end else now
    if query.start:
        lo = parse_instant("from", query.start, zone)
    elif all_retained:
        lo = hi - timedelta(days=plan.retention_days)  # cut to the retention below
    else:
        lo = default_start(hi, zone, interval)
    if lo >= hi:
        raise ValidationFailed.field("from", "must be before to")
    lo, hi = clamp_to_retention(plan, floor_hour(lo), ceil_hour(hi), now)
    if interval == "hour" and (hi - lo) > timedelta(hours=MAX_HOURS):
        raise ValidationFailed.field("interval", f"must be day or week over more than {MAX_HOURS} hours")
    return Window(lo, hi, zone, interval)


def bucket_starts(window: Window) -> list[datetime]:
    """UTC starts of the local buckets covering the window (the first one may begin before it)."""
    tz, start, end = window.tz, window.start, window.end
    if start >= end:
        return []
    if window.interval == "hour":
        count = int((end - start) / timedelta(hours=1))
        return [start + timedelta(hours=i) for i in range(count)]
    day = start.astimezone(tz).date()
    step = timedelta(days=1)
    if window.interval == "week":
        day -= timedelta(days=day.weekday())  # ISO weeks start on Monday
        step = timedelta(days=7)
    starts: list[datetime] = []
    while True:
        # Local midnight of each day: a DST day is 23 or 25 hours long in UTC.
        moment = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
        if moment >= end and starts:
            return starts
        starts.append(moment)
        day += step
