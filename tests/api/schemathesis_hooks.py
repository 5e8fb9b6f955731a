"""Schemathesis hooks for tests/api/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

Every failure the run accepts is listed here, each with the documented rule it stands for. They are
rules JSON Schema cannot state: they relate two values of one request, or a value to what is
stored. Nothing else is filtered: any other failure fails the test.
"""

from __future__ import annotations

import itertools
import os
from datetime import datetime
from typing import Any

import httpx
import hypothesis
import schemathesis
from hypothesis import Phase
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.openapi.checks import RejectedPositiveData

# (field, or its ending after "]" / "."; the server's message) of 422s that a schema-valid request can
# still earn. Each is documented in the field's description and in docs/api.md.
STATEFUL_OR_CROSS_FIELD = {
    # A split's weights add up to 100 (JSON Schema cannot sum array items).
    ("split", "weights must sum to 100"),
    # A rule's `after` is earlier than its `before` (JSON Schema cannot compare two values).
    ("conditions", "'after' must be earlier than 'before'"),
    # A stats window's `from` is before its `to` (two query parameters).
    ("from", "must be before to"),
    # Hourly series hold at most 2000 hours (`interval` against the `from`/`to` span).
    ("interval", "must be day or week over more than 2000 hours"),
    # A handle another page of the team holds (uniqueness is the database's to say).
    ("handle", "is already taken"),
    ("slug", "is already taken"),
    # A link_id must be one of the team's short links (a reference to stored data).
    ("link_id", "is not the id of a short link of your team"),
    # A block id must be one of the page's stored blocks (a reference to stored data).
    ("id", "is not the id of a block of this page"),
    ("id", "appears more than once"),
    # Team analytics: filters a per-dimension roll-up cannot answer together with a group_by (two
    # query parameters, against each other).
    *((name, "cannot be combined with") for name in ("country", "source", "link_id", "label", "domain")),
    # A link's domain must be one of the team's domains (a reference to stored data).
    ("domain", "must be one of this team's domains"),
    ("domain", "must be a links domain"),
    ("domain", "must be a bio domain"),
    # Verification needs the TXT record in DNS (what a resolver answers, not the request).
    ("hostname", "needs the TXT record"),
    # Sizes in bytes of encoded JSON, and counts of unnamed keys (stated in the descriptions).
    ("apple_app_site_association", "must be at most 64 KB of JSON"),
    ("assetlinks", "must be at most 64 KB of JSON"),
    ("config", "must be at most 4 KiB of JSON"),
    ("page_data", "extra keys must hold at most 50 keys and 16 KiB of JSON"),
    ("theme", "at most 20 extra theme tokens"),
}


# No targeted phase: Hypothesis would hill-climb each operation's success rate past the bounded
# examples (fuzzing took 80 s with it, 15 s without); the run stays a fixed, bounded sample.
hypothesis.settings.register_profile("linkedge-schemathesis", phases=[p for p in Phase if p is not Phase.target])
hypothesis.settings.load_profile("linkedge-schemathesis")

KEYS = itertools.cycle(os.environ.get("LINKEDGE_ST_KEYS", "").split(","))
CREATES_PAGES = {"POST /api/v1/bio-pages", "POST /api/v1/bio/pages"}


@schemathesis.auth(refresh_interval=None)
class TeamKeys:
    """Keys of one team, every ability each, taken in turn: each key has the plan's 3,000 requests a
    minute, so the run is not throttled into testing 429s (one key would be, in about 20 s)."""

    def get(self, case: Any, ctx: Any) -> str:
        return next(KEYS)

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    """Pages created outside the stateful phase are deleted at once: the coverage phase alone creates
    more than the business plan's 500 pages, and past that every create is a 402 that tests nothing."""
    if response.status_code != 201 or case.operation.label not in CREATES_PAGES:
        return
    if case.meta is not None and case.meta.phase.name == "stateful":
        return
    try:
        page_id = response.json()["data"]["id"]
    except (ValueError, KeyError, TypeError):
        return
    httpx.delete(f"{response.request.url}/{page_id}", headers={"Authorization": f"Bearer {next(KEYS)}"}, timeout=10)


def _repaired_rules(rules: Any) -> None:
    """A positive case's routing rules, made to satisfy the two rules JSON Schema cannot state: a
    split's weights add up to 100, and a rule's `after` is earlier than its `before`."""
    if not isinstance(rules, list):
        return
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        split = rule.get("split")
        if isinstance(split, list) and 2 <= len(split) <= 4 and all(isinstance(v, dict) for v in split):
            for i, variant in enumerate(split):
                variant["weight"] = 100 // len(split) + (100 % len(split) if i == 0 else 0)
        conditions = rule.get("conditions")
        if isinstance(conditions, dict) and isinstance(conditions.get("after"), str):
            try:
                after = datetime.fromisoformat(conditions["after"].replace("Z", "+00:00"))
                before = datetime.fromisoformat(str(conditions.get("before")).replace("Z", "+00:00"))
            except ValueError:
                continue
            if after >= before:
                conditions.pop("before")


# The seeded domain (kind both) a positive body may name: a link's or a page's `domain` must be one
# of the team's domains, a reference to stored data that JSON Schema cannot state.
TARGET_DOMAIN = "target.example.com"
NAMES_A_DOMAIN = {"POST /api/v1/links", "PATCH /api/v1/links/{link_id}", "POST /api/v1/bio-pages"}


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    if case.meta is None or not case.meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    _repaired_rules(case.body.get("routing_rules"))
    if isinstance(case.body.get("domain"), str) and case.operation.label in NAMES_A_DOMAIN:
        case.body["domain"] = TARGET_DOMAIN
    for item in case.body.get("links", []) if case.operation.label == "POST /api/v1/links/bulk" else []:
        if isinstance(item, dict):
            _repaired_rules(item.get("routing_rules"))
            if isinstance(item.get("domain"), str):
                item["domain"] = TARGET_DOMAIN
    return case


def _name_ends(field: str) -> str:
    return field.rsplit(".", 1)[-1].split("[", 1)[0]


def _only_stateful_422(response: Any) -> bool:
    """Whether every field a 422 names broke one of the rules above (and nothing the schema states)."""
    try:
        details = response.json()["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(details) and all(
        any(
            _name_ends(d["field"]) == field and d["message"].startswith(text) for field, text in STATEFUL_OR_CROSS_FIELD
        )
        for d in details
    )


def _bulk_reported_the_items(case: Any, response: Any) -> bool:
    """POST /links/bulk answers 201 with each item that is not a valid LinkCreate in data.errors (documented
    partial success), so a body with such an item is not 'accepted' as schemathesis reads it."""
    if case.operation.label != "POST /api/v1/links/bulk" or response.status_code != 201:
        return False
    try:
        return bool(response.json()["data"]["errors"])
    except (ValueError, KeyError, TypeError):
        return False


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    keep = _keep(failure, case, response)
    log = os.environ.get("LINKEDGE_ST_FILTER_LOG")  # the test counts what was accepted, and why
    if log and not keep:
        with open(log, "a") as out:
            out.write(
                f"{type(failure).__name__}\t{case.operation.label}\t{response.status_code}\t{response.text[:300]}\n"
            )
    return keep


def _unicode_hostname(case: Any, response: Any) -> bool:
    """A domain's hostname may be an internationalised (Unicode) name, stored as punycode (documented in
    the field's description); the schema's pattern states the ASCII form, so such a 201 is no failure."""
    if case.operation.label != "POST /api/v1/domains" or response.status_code != 201:
        return False
    hostname = case.body.get("hostname") if isinstance(case.body, dict) else None
    return isinstance(hostname, str) and not hostname.isascii()


def _keep(failure: Any, case: Any, response: Any) -> bool:
    if isinstance(failure, RejectedPositiveData) and response.status_code == 422 and _only_stateful_422(response):
        return False
    if isinstance(failure, AcceptedNegativeData) and (
        _bulk_reported_the_items(case, response) or _unicode_hostname(case, response)
    ):
        return False
    return True
