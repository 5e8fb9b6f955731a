"""Per-variant results of a link's split rules, with the sample-ratio-mismatch test.

The edge records a split click's variant as ``<rule index>.<variant index>`` (the ``variant``
breakdown dimension). The results follow the link's current rules: each split rule's variants with
their configured weights, the clicks each got over the window and their share of the rule's clicks,
and :func:`api.stats.srm.srm_test` of those clicks against the weights. Clicks recorded under
variant indexes the rule no longer has are counted apart (``other_clicks``) and left out of the
test. Visitors per variant are not given: breakdown rows hold click counts only, no visitor sketch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from api.stats.labels import parse_variant
from api.stats.srm import srm_test


def split_results(rules: Sequence[Mapping[str, Any]], counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """One entry per split rule of ``rules``; ``counts`` maps stored variant values to clicks."""
    by_rule: dict[int, dict[int, int]] = {}
    for value, n in counts.items():
        parsed = parse_variant(value)
        if parsed is not None:
            seen = by_rule.setdefault(parsed[0], {})
            seen[parsed[1]] = seen.get(parsed[1], 0) + n  # "1.01" and "1.1" are one variant
    out = []
    for index, rule in enumerate(rules):
        if "split" not in rule:
            continue
        variants = list(rule["split"])
        seen = by_rule.get(index, {})
        clicks = [seen.get(i, 0) for i in range(len(variants))]
        total = sum(clicks)
        result = srm_test(clicks, [v["weight"] for v in variants])
        out.append(
            {
                "rule": index,
                "conditions": dict(rule.get("conditions") or {}),
                "clicks": total,
                "other_clicks": sum(n for i, n in seen.items() if i >= len(variants)),
                "variants": [
                    {
                        "variant": i,
                        "value": f"{index}.{i}",
                        "url": v["url"],
                        "weight": v["weight"],
                        "clicks": clicks[i],
                        "share": clicks[i] / total if total else None,
                        "expected_clicks": result.expected[i] if result.expected else 0.0,
                    }
                    for i, v in enumerate(variants)
                ],
                "srm": result.as_dict(),
            }
        )
    return out
