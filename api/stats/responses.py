"""Response shapes of the stats routes, for the OpenAPI document only (handlers build their bodies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.freshness import COUNT_CAP
from api.openapi import Meta

__all__ = [
    "BlockSeriesEnvelope",
    "PageBreakdownsEnvelope",
    "StatsEnvelope",
    "StatsMeta",
    "VariantsEnvelope",
    "ok_response",
]


class StatsMeta(Meta):
    complete_through: datetime | None = Field(
        description="The counters hold every event Redis accepted up to this moment (RFC 3339 UTC, "
        "milliseconds). Null when Redis did not answer.",
        examples=["2026-11-01T10:00:00.123Z"],
    )
    pending_events: int | None = Field(
        ge=0,
        description="Events accepted by Redis and not applied yet: the event lines of the first "
        f"{COUNT_CAP} unapplied stream entries of each shard. Null when Redis did not answer.",
    )
    pending_exact: bool | None = Field(
        description=f"False when some shard has more than {COUNT_CAP} unapplied entries: pending_events "
        "is then a lower bound. Null when Redis did not answer.",
    )


class StatsEnvelope(BaseModel):
    data: dict[str, Any]
    meta: StatsMeta


def ok_response(description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 entry of a stats route's ``responses``."""
    return {200: {"model": StatsEnvelope, "description": description}}


class SrmOut(BaseModel):
    test: str = Field(description="Always chi_square: Pearson's goodness-of-fit test.", examples=["chi_square"])
    statistic: float | None = Field(ge=0, description="The chi-square statistic; null without any click.")
    df: int = Field(ge=1, description="Degrees of freedom: variants minus one.")
    p_value: float | None = Field(
        ge=0, le=1, description="Chance of a split at least this far from its weights if it works as configured."
    )
    alpha: float = Field(description="The threshold: a mismatch is p_value below it.", examples=[0.001])
    mismatch: bool | None = Field(
        description="True: the clicks do not fit the weights (p_value < alpha); null: too few clicks to tell."
    )
    reason: str | None = Field(description="Why mismatch is null; else null.")


class VariantOut(BaseModel):
    variant: int = Field(ge=0, description="Index of the variant in the rule's split.")
    value: str = Field(description="The variant as the variant breakdown names it.", examples=["2.0"])
    url: str
    weight: int = Field(description="Configured weight, in percent.")
    clicks: int = Field(ge=0)
    share: float | None = Field(ge=0, le=1, description="Of the rule's clicks in the window; null without any.")
    expected_clicks: float = Field(ge=0, description="The clicks the weight asks for, of the rule's clicks.")


class SplitRuleOut(BaseModel):
    rule: int = Field(ge=0, description="Index of the split rule in routing_rules.")
    conditions: dict[str, Any]
    clicks: int = Field(ge=0, description="Human clicks the rule's variants got in the window.")
    other_clicks: int = Field(
        ge=0, description="Clicks recorded for variant indexes the rule no longer has (left out of the test)."
    )
    variants: list[VariantOut]
    srm: SrmOut


class VariantsData(BaseModel):
    link_id: str
    from_: datetime = Field(alias="from")
    to: datetime
    tz: str
    rules: list[SplitRuleOut] = Field(description="One entry per split rule the link has now, in rule order.")


class VariantsEnvelope(BaseModel):
    data: VariantsData
    meta: StatsMeta


class PageBreakdownsData(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime
    tz: str
    views: int = Field(ge=0, description="Human views of the page in the window.")
    breakdowns: dict[str, list[dict[str, Any]]] = Field(
        description="Per dimension (country, device, os, browser, referrer, source, utm_source, utm_medium, "
        "utm_campaign, region, city, network, domain), the top 10 values by views: `{value, views}`; region "
        "rows add `country` and `region`, city rows `country`, `region` and `city`, domain rows `hostname`."
    )


class PageBreakdownsEnvelope(BaseModel):
    data: PageBreakdownsData
    meta: StatsMeta


class BlockBucket(BaseModel):
    start: datetime = Field(description="UTC start of the bucket.")
    local: datetime = Field(description="The same moment in `tz`.")
    clicks: int = Field(ge=0)
    visitors: int = Field(ge=0)


class BlockSeries(BaseModel):
    id: str
    type: str
    label: str | None
    clicks: int = Field(ge=0, description="Human clicks of the block in the window.")
    visitors: int = Field(ge=0, description="Distinct visitors who clicked it (once per day).")
    series: list[BlockBucket]


class BlockSeriesData(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime
    tz: str
    interval: str
    clicks: int = Field(ge=0, description="Clicks of all the blocks in the window.")
    blocks: list[BlockSeries] = Field(description="The page's blocks in sort order, each with its series.")


class BlockSeriesEnvelope(BaseModel):
    data: BlockSeriesData
    meta: StatsMeta
