"""Sample-ratio mismatch: do a split's observed clicks fit its configured weights?

Pearson's chi-square goodness-of-fit test, with the survival function of the chi-square
distribution in closed form (no scipy): for an even number of degrees of freedom ``2k``,
``Q = exp(-x/2) * sum_{i<k} (x/2)^i / i!``; for an odd ``2k + 1``,
``Q = erfc(sqrt(x/2)) + sqrt(2/pi) * exp(-x/2) * sum_{i=1..k} x^(i - 1/2) / (1 * 3 * ... * (2i - 1))``.
A split has 2 to 4 variants, so 1 to 3 degrees of freedom:
df 1: ``erfc(sqrt(x/2))``; df 2: ``exp(-x/2)``; df 3: ``erfc(sqrt(x/2)) + sqrt(2x/pi) * exp(-x/2)``.

A mismatch (p below :data:`ALPHA`) means the split did not send traffic as configured: a broken
bucketing, bots that ignore the variant cookie, or weights changed during the window. The test
needs an expected count of at least :data:`MIN_EXPECTED` in every variant; below that the
chi-square approximation does not hold and the verdict is ``None`` with a reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.001
MIN_EXPECTED = 5.0


def chi_square_sf(x: float, df: int) -> float:
    """P(X >= x) for X chi-square distributed with ``df`` degrees of freedom (``df`` >= 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df}")
    if x <= 0:
        return 1.0
    half = x / 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, df // 2):
            term *= half / i
            total += term
        return min(1.0, math.exp(-half) * total)
    total, term = 0.0, math.sqrt(x)
    for i in range(1, (df - 1) // 2 + 1):
        if i > 1:
            term *= x / (2 * i - 1)
        total += term
    return min(1.0, math.erfc(math.sqrt(half)) + math.sqrt(2 / math.pi) * math.exp(-half) * total)


@dataclass(frozen=True)
class SrmResult:
    statistic: float | None  # chi-square; None without any click
    df: int
    p_value: float | None
    mismatch: bool | None  # None: too few clicks to tell (see reason)
    reason: str | None = None
    expected: tuple[float, ...] = ()  # clicks each variant should have had

    def as_dict(self) -> dict[str, object]:
        return {
            "test": "chi_square",
            "statistic": self.statistic,
            "df": self.df,
            "p_value": self.p_value,
            "alpha": ALPHA,
            "mismatch": self.mismatch,
            "reason": self.reason,
        }


def srm_test(observed: Sequence[int], weights: Sequence[float]) -> SrmResult:
    """Chi-square test of ``observed`` clicks per variant against their ``weights`` (any positive scale)."""
    if len(observed) != len(weights) or len(observed) < 2:
        raise ValueError("need one weight per variant, and at least two variants")
    if any(w <= 0 for w in weights):
        raise ValueError("weights must be positive")
    df = len(observed) - 1
    total, scale = sum(observed), sum(weights)
    if total == 0:
        return SrmResult(None, df, None, None, "no clicks in the window")
    expected = tuple(total * w / scale for w in weights)
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    p_value = chi_square_sf(statistic, df)
    fewest = min(expected)
    if fewest < MIN_EXPECTED:
        i = expected.index(fewest)
        reason = (
            f"too few clicks: variant {i} expects {fewest:.2f} (at least {MIN_EXPECTED:g} in every variant are needed)"
        )
        return SrmResult(statistic, df, p_value, None, reason, expected)
    return SrmResult(statistic, df, p_value, p_value < ALPHA, None, expected)
