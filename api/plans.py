"""Plans and their limits, defined here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass

from api.serving.retention import RETENTION_DAYS


@dataclass(frozen=True)
class Plan:
    name: str
    max_links: int
    max_bio_pages: int
    bio_pages: bool  # whether the plan includes bio pages at all
    retention_days: int  # analytics history the API will show and the worker keeps (api.serving.retention)
    rate_per_minute: int  # API requests per key per minute
    max_domains: int  # custom domains a team may add


PLANS: dict[str, Plan] = {
    "free": Plan(
        "free",
        max_links=1_000,
        max_bio_pages=1,
        bio_pages=True,
        retention_days=RETENTION_DAYS["free"],
        rate_per_minute=60,
        max_domains=1,
    ),
    "pro": Plan(
        "pro",
        max_links=50_000,
        max_bio_pages=20,
        bio_pages=True,
        retention_days=RETENTION_DAYS["pro"],
        rate_per_minute=600,
        max_domains=10,
    ),
    "business": Plan(
        "business",
        max_links=1_000_000,
        max_bio_pages=500,
        bio_pages=True,
        retention_days=RETENTION_DAYS["business"],
        rate_per_minute=3000,
        max_domains=100,
    ),
}


def get_plan(name: str) -> Plan:
    try:
        return PLANS[name]
    except KeyError:
        raise ValueError(f"unknown plan {name!r}; expected one of {', '.join(PLANS)}") from None
