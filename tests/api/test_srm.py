"""api.stats.srm: the chi-square survival function against known quantiles, and the SRM verdict."""

from __future__ import annotations

import math

import pytest

from api.stats.srm import ALPHA, chi_square_sf, srm_test


# Upper quantiles of the chi-square distribution (R's qchisq(p, df, lower.tail = FALSE)).
@pytest.mark.parametrize(
    ("x", "df", "p"),
    [
        (3.841458820694124, 1, 0.05),
        (6.634896601021214, 1, 0.01),
        (10.827566170662733, 1, 0.001),
        (0.45493642311957283, 1, 0.5),
        (5.991464547107979, 2, 0.05),
        (13.815510557964274, 2, 0.001),
        (1.3862943611198906, 2, 0.5),
        (7.814727903251178, 3, 0.05),
        (16.26623619623813, 3, 0.001),
        (2.3659738843753377, 3, 0.5),
        (9.487729036781154, 4, 0.05),
        (11.070497693516351, 5, 0.05),
    ],
)
def test_survival_function_at_known_quantiles(x: float, df: int, p: float) -> None:
    assert chi_square_sf(x, df) == pytest.approx(p, rel=1e-9)


def test_survival_function_closed_forms_and_edges() -> None:
    for x in (0.1, 1.0, 2.5, 7.0, 30.0):
        assert chi_square_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-12)
        assert chi_square_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-12)
        df3 = math.erfc(math.sqrt(x / 2)) + math.sqrt(2 * x / math.pi) * math.exp(-x / 2)
        assert chi_square_sf(x, 3) == pytest.approx(df3, rel=1e-12)
    assert chi_square_sf(0.0, 1) == chi_square_sf(-1.0, 3) == 1.0
    assert chi_square_sf(640.0, 1) < 1e-100
    assert chi_square_sf(1e6, 3) == 0.0
    with pytest.raises(ValueError):
        chi_square_sf(1.0, 0)


def test_a_90_10_split_against_50_50_weights_is_a_mismatch() -> None:
    result = srm_test([900, 100], [50, 50])
    assert result.statistic == pytest.approx(640.0)
    assert (result.df, result.mismatch, result.reason) == (1, True, None)
    assert result.p_value is not None and result.p_value < ALPHA
    assert result.expected == (500.0, 500.0)


def test_a_fair_split_is_not() -> None:
    result = srm_test([5003, 4997], [50, 50])
    assert result.statistic == pytest.approx(0.0036)
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(0.0018)))
    assert result.mismatch is False
    three = srm_test([702, 198, 100], [70, 20, 10])
    assert three.df == 2 and three.mismatch is False
    assert three.statistic == pytest.approx(4 / 700 + 4 / 200)


def test_the_boundary_is_p_below_alpha() -> None:
    # Four variants of 25 %: df 3, where p = 0.001 at chi-square 16.266.
    assert srm_test([1090, 910, 1000, 1000], [25] * 4).mismatch is False  # chi-square 16.2
    assert srm_test([1091, 909, 1000, 1000], [25] * 4).mismatch is True  # chi-square 16.562


def test_too_few_clicks_gives_no_verdict() -> None:
    none = srm_test([0, 0], [50, 50])
    assert (none.statistic, none.p_value, none.mismatch, none.reason) == (None, None, None, "no clicks in the window")
    few = srm_test([9, 0], [95, 5])  # variant 1 expects 0.45 clicks
    assert few.mismatch is None and few.statistic is not None
    assert few.reason is not None and few.reason.startswith("too few clicks: variant 1 expects 0.45")
    assert srm_test([5, 5], [50, 50]).mismatch is False  # 5 expected in each: enough
    with pytest.raises(ValueError):
        srm_test([1, 2, 3], [50, 50])
