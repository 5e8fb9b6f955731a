"""Response shapes of the stats routes, for the OpenAPI document only (handlers build their bodies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.freshness import COUNT_CAP
from api.openapi import Meta

__all__ = ["StatsEnvelope", "StatsMeta", "ok_response"]


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
