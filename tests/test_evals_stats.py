"""Wilson intervals against values computed by hand from the formula."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from colony.evals.stats import Z95, overlap, wilson


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        # p = 0.8: centre (0.8 + 3.8415/20)/1.38415 = 0.71674, margin 1.96*sqrt(0.016 + 0.0096)/1.38415 = 0.22658
        (8, 10, 0.4902, 0.9433),
        # k = 0: the upper bound reduces to z^2 / (n + z^2) = 3.8415 / 13.8415
        (0, 10, 0.0, 0.2775),
        # k = n: the lower bound reduces to n / (n + z^2) = 10 / 13.8415
        (10, 10, 0.7225, 1.0),
        # p = 0.5, n = 100: margin 1.96*sqrt(0.0025 + 0.000096)/1.038415 = 0.09617
        (50, 100, 0.4038, 0.5962),
        # p = 0.5, n = 20: margin 1.96*sqrt(0.0125 + 0.0024)/1.19207 = 0.20071
        (10, 20, 0.2993, 0.7007),
        (20, 20, 0.8389, 1.0),
        (3, 3, 0.4385, 1.0),
        (0, 3, 0.0, 0.5615),
    ],
)
def test_wilson_matches_hand_computed_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson(k, n)
    assert got[0] == pytest.approx(lo, abs=5e-4)
    assert got[1] == pytest.approx(hi, abs=5e-4)


def test_closed_forms_at_the_boundaries() -> None:
    z2 = Z95 * Z95
    for n in (1, 5, 37, 1000):
        assert wilson(0, n)[1] == pytest.approx(z2 / (n + z2))
        assert wilson(n, n)[0] == pytest.approx(n / (n + z2))


@given(hs.integers(1, 2000).flatmap(lambda n: hs.tuples(hs.integers(0, n), hs.just(n))))
def test_interval_contains_the_estimate_and_stays_in_unit_range(kn: tuple[int, int]) -> None:
    k, n = kn
    lo, hi = wilson(k, n)
    assert 0.0 <= lo <= k / n + 1e-12 and k / n - 1e-12 <= hi <= 1.0
    assert hi - lo <= 2 * Z95 * math.sqrt(0.25 / n) + 1e-9  # never wider than the worst-case normal interval


def test_degenerate_inputs_and_overlap() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson(5, 4)
    assert overlap((0.1, 0.5), (0.4, 0.9)) and not overlap((0.1, 0.3), (0.31, 0.9))
