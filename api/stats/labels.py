"""Readable breakdown rows for the dimensions whose stored values are ids or packed text.

The roll-up stores what the edge wrote (:mod:`redirector.events`): a rule's index or ``none``, a
variant as ``<rule index>.<variant index>``, a destination id, a region as ``<CC>|<region>``, a
city as ``<CC>|<region>|<city>`` and a team domain's id. Every row keeps ``value`` and its count;
this module adds fields that say what the value means. Rows of the other dimensions are left as
they are.

Rules and variants are labelled from the link's *current* rules, so a row whose rule index the link
no longer has (or no longer has as a split) gets ``null`` for what only the rule could tell.
Destination ids are looked up in ``link_destinations``, which keeps every URL a link ever had.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redirector.events import PLACE_SEP, RULE_NONE

Row = dict[str, Any]


@dataclass(frozen=True)
class Names:
    """What the labels are read from: the link's default URL and current rules (none for a page),
    destination id -> URL, and team domain id -> hostname."""

    default_url: str | None = None
    rules: Sequence[Mapping[str, Any]] = ()
    urls: Mapping[str, str] = field(default_factory=dict)
    hostnames: Mapping[str, str] = field(default_factory=dict)


def parse_variant(value: str) -> tuple[int, int] | None:
    """``(rule index, variant index)`` of a stored variant value, None if it is not one."""
    rule, dot, variant = value.partition(".")
    if not (dot and rule.isdigit() and variant.isdigit()):
        return None
    return int(rule), int(variant)


def split_of(rules: Sequence[Mapping[str, Any]], index: int) -> list[Mapping[str, Any]] | None:
    """The variants of rule ``index`` when the link has it and it is a split."""
    if 0 <= index < len(rules) and "split" in rules[index]:
        return list(rules[index]["split"])
    return None


def _rule(row: Row, names: Names) -> Row:
    if row["value"] == RULE_NONE:  # the link has rules and none matched: its default URL was sent
        return {**row, "rule": None, "default": True, "split": False, "url": names.default_url}
    index = int(row["value"]) if row["value"].isdigit() else None
    rule = names.rules[index] if index is not None and index < len(names.rules) else None
    return {
        **row,
        "rule": index,
        "default": False,
        "split": None if rule is None else "split" in rule,
        "url": None if rule is None else rule.get("url"),
    }


def _variant(row: Row, names: Names) -> Row:
    parsed = parse_variant(row["value"])
    if parsed is None:
        return {**row, "rule": None, "variant": None, "url": None, "weight": None}
    rule, variant = parsed
    split = split_of(names.rules, rule)
    known = split is not None and variant < len(split)
    return {
        **row,
        "rule": rule,
        "variant": variant,
        "url": split[variant]["url"] if split is not None and known else None,
        "weight": split[variant]["weight"] if split is not None and known else None,
    }


def _region(row: Row, names: Names) -> Row:
    country, _, region = row["value"].partition(PLACE_SEP)
    return {**row, "country": country, "region": region}


def _city(row: Row, names: Names) -> Row:
    country, _, rest = row["value"].partition(PLACE_SEP)
    region, _, city = rest.rpartition(PLACE_SEP)
    return {**row, "country": country, "region": region, "city": city}


def _destination(row: Row, names: Names) -> Row:
    return {**row, "url": names.urls.get(row["value"])}


def _domain(row: Row, names: Names) -> Row:
    return {**row, "hostname": names.hostnames.get(row["value"])}


_LABELS = {
    "rule": _rule,
    "variant": _variant,
    "destination": _destination,
    "region": _region,
    "city": _city,
    "domain": _domain,
}


def label(breakdowns: Mapping[str, list[Row]], names: Names) -> dict[str, list[Row]]:
    """``breakdowns`` (dimension -> rows with ``value``) with the fields above added."""
    out: dict[str, list[Row]] = {}
    for dimension, rows in breakdowns.items():
        fn = _LABELS.get(dimension)
        out[dimension] = [fn(r, names) for r in rows] if fn is not None else list(rows)
    return out
