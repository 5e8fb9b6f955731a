"""Response shapes of ``GET /analytics``, for the OpenAPI document only (the handler builds the body)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.stats.responses import StatsMeta

__all__ = ["AnalyticsEnvelope", "ok_response"]


class AnalyticsRow(BaseModel):
    """One row: a bucket (with an interval), a group value (with ``group_by``), and its counts.

    Which label fields a row has depends on ``group_by``; every row of a response has the same ones,
    in the same order as the CSV export's columns."""

    model_config = ConfigDict(extra="allow")

    start: str | None = Field(
        None,
        description="The bucket's local start with its offset (with an interval).",
        examples=["2026-11-01T00:00:00-04:00"],
    )
    value: str | None = Field(
        None,
        description="The group's value: a link, page, destination or domain id, a country code, a "
        "region (`US|California`), ...; `(unknown)` (`(direct)` for referrers) when not known.",
    )
    short_code: str | None = Field(None, description="group_by=link: the link's code.")
    domain: str | None = Field(None, description="group_by=link: the hostname its short URL is on.")
    short_url: str | None = Field(None, description="group_by=link.")
    url: str | None = Field(
        None, description="group_by=link: the link's default URL; destination: the URL sent (from link_destinations)."
    )
    handle: str | None = Field(None, description="group_by=page: the page's handle.")
    country: str | None = Field(None, description="group_by=region or city: the country code.")
    region: str | None = Field(None, description="group_by=region or city.")
    city: str | None = Field(None, description="group_by=city.")
    hostname: str | None = Field(None, description="group_by=domain: the team domain's hostname.")
    views: int | None = Field(None, ge=0, description="group_by=page: human views.")
    clicks: int = Field(ge=0, description="Human clicks (group_by=page: clicks on the page's blocks).")


class AnalyticsTotals(BaseModel):
    clicks: int = Field(ge=0, description="Human clicks over the window, every group value included.")
    views: int | None = Field(None, ge=0, description="group_by=page: human views of every page.")


class AnalyticsData(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from", description="The window used: whole UTC hours, clamped to the retention.")
    to: datetime
    tz: str
    interval: str = Field(description="none | hour | day | week | month")
    group_by: str
    filters: dict[str, Any] = Field(description="The filters applied (country normalised to upper case).")
    limit: int = Field(ge=1, le=1000)
    more: bool = Field(description="More group values had clicks than `limit` returned.")
    totals: AnalyticsTotals
    rows: list[AnalyticsRow]


class AnalyticsEnvelope(BaseModel):
    data: AnalyticsData
    meta: StatsMeta


def ok_response() -> dict[int | str, dict[str, Any]]:
    """The 200 entry: the JSON envelope, or (``format=csv``) the rows as CSV."""
    return {
        200: {
            "model": AnalyticsEnvelope,
            "description": "The team's counters (meta says how fresh they are), or with format=csv the same rows "
            "as CSV with a header row",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    }
