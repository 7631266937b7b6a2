"""The report's statistics against independent computations: scipy, formulas written out here, Monte Carlo and values
worked by hand (the coverage of these methods: test_stats_simulation.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from basefuse.reports import stats
from stats_reference import hall_t1, hull_interval

SAMPLES = [[0.0, 1.0, 5.0], [2.5, -1.0, 0.3, 7.9, 1.1], [1.0, 2.0, 2.0, 3.0, 10.0, -4.0, 0.5, 0.7, 2.2]]


@pytest.mark.parametrize("values", SAMPLES)
def test_skewness_is_m3_over_s_cubed(values):
    x = np.asarray(values)
    assert stats.skewness(values) == pytest.approx(float(sps.skew(x, bias=True)) * ((x.size - 1) / x.size) ** 1.5)


@pytest.mark.parametrize("values", SAMPLES)
def test_hall_interval_endpoints_sit_where_the_transformed_t_meets_the_t_quantile(values):
    x = np.asarray(values)
    q = float(sps.t.ppf(0.975, x.size - 1))
    lo, hi = stats.hall_interval(values)
    assert lo < x.mean() < hi
    assert hall_t1(x, lo) == pytest.approx(q, abs=1e-7)   # mu at the lower end: T1 = +q
    assert hall_t1(x, hi) == pytest.approx(-q, abs=1e-7)  # upper end: T1 = -q


@pytest.mark.parametrize("values", SAMPLES)
def test_p_values_against_scipy(values):
    x = np.asarray(values)
    p_t = float(sps.ttest_1samp(x, 0.0).pvalue)
    p_hall = 2 * float(sps.t.sf(abs(hall_t1(x, 0.0)), x.size - 1))
    assert stats.t_test_p(values) == pytest.approx(p_t, rel=1e-9)
    assert stats.hall_p(values) == pytest.approx(p_hall, rel=1e-9)
    assert stats.mean_p(values) == pytest.approx(max(p_t, p_hall), rel=1e-9)
    lo, hi = hull_interval(values)  # scipy's t-interval and Hall's by root finding
    assert stats.mean_interval(values) == (pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))


def test_hall_shifts_the_interval_towards_the_long_tail():
    # One large value: skewness > 0, so the interval reaches further above the mean than below it.
    lo, hi = stats.hall_interval([1.0, 2.0, 2.0, 3.0, 10.0])
    assert hi - 3.6 > 3.6 - lo


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=3, max_size=15), st.floats(-20, 20))
def test_mean_p_below_alpha_exactly_when_zero_is_outside_the_interval(values, shift):
    x = [v + shift for v in values]
    ci, p = stats.mean_interval(x), stats.mean_p(x)
    assert (ci is None) == (p is None)
    if ci is None:
        return
    assume(abs(p - 0.05) > 1e-9 and min(abs(ci[0]), abs(ci[1])) > 1e-9 * max(1.0, max(map(abs, x))))
    assert (p < 0.05) == (not ci[0] <= 0 <= ci[1])


def test_log_std_ratio_sd_matches_trigamma_and_monte_carlo():
    assert stats.log_std_ratio_sd(3) == pytest.approx(math.sqrt(math.pi ** 2 / 12))  # trigamma(1) = pi^2 / 6
    rng = np.random.default_rng(0)
    s = rng.standard_normal((2, 200_000, 5)).std(axis=-1, ddof=1)
    assert stats.log_std_ratio_sd(5) == pytest.approx(float(np.log(s[0] / s[1]).std()), rel=0.01)


def test_log_std_ratios_by_hand():
    # (1.98 + 0.02) / (0.98 + 0.02) = 2; equal stds give 0.
    assert stats.log_std_ratios([1.98, 3.0], [0.98, 3.0]) == [pytest.approx(math.log(2)), 0.0]
    assert stats.log_std_ratios([0.0], [0.0]) == [0.0]  # every seed tied on both: finite, no difference


def test_detectable_effect_has_80_percent_power_by_monte_carlo():
    n, sd = 9, 2.0
    effect = stats.detectable_effect(n, sd)
    # Above the normal approximation (z quantiles ignore the estimated SD), near the sum of t quantiles (2.130).
    assert effect > (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * sd / 3
    assert effect == pytest.approx((sps.t.ppf(0.975, 8) + sps.t.ppf(0.8, 8)) * sd / 3, rel=0.01)
    x = np.random.default_rng(1).normal(effect, sd, size=(40_000, n))
    t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / math.sqrt(n))
    power = float(np.mean(np.abs(t) > sps.t.ppf(0.975, n - 1)))
    assert power == pytest.approx(0.8, abs=0.01)  # Monte Carlo SE 0.002
    assert stats.detectable_effect(2, sd) is None and stats.detectable_effect(9, 0.0) is None


SPREAD_A = [0.0, 1.0, 2.0, 3.0, 10.0]  # median 2, absolute deviations 2, 1, 0, 1, 8: mean 2.4
SPREAD_B = [1.0, 1.0, 2.0, 3.0, 3.0]   # median 2, absolute deviations 1, 1, 0, 1, 1: mean 0.8


def test_spread_ratio_by_hand():
    assert stats.spread_ratio(SPREAD_A, SPREAD_B) == pytest.approx(3.0)
    assert stats.spread_ratio(SPREAD_B, SPREAD_A) == pytest.approx(1 / 3)
    assert stats.spread_ratio_p(SPREAD_A, SPREAD_B, 3.0) == pytest.approx(1.0)  # the estimate itself: t = 0
    # Linearisation z_a / 2.4 - z_b / 0.8 = (-5/12, -5/6, 0, -5/6, 25/12): the interval contains the t-interval of
    # log 3 + that mean (the hull is at least as wide), and its ends are where the test's p crosses 0.05.
    u = np.array([-5 / 12, -5 / 6, 0.0, -5 / 6, 25 / 12])
    t_lo, t_hi = sps.t.interval(0.95, 4, loc=0.0, scale=sps.sem(u))
    lo, hi = stats.spread_ratio_interval(SPREAD_A, SPREAD_B)
    assert lo <= 3 * math.exp(t_lo) + 1e-12 and hi >= 3 * math.exp(t_hi) - 1e-12
    assert stats.spread_ratio_p(SPREAD_A, SPREAD_B, lo) == pytest.approx(0.05, abs=1e-9)
    assert stats.spread_ratio_p(SPREAD_A, SPREAD_B, hi) == pytest.approx(0.05, abs=1e-9)
    p_out, p_in = (stats.spread_ratio_p(SPREAD_A, SPREAD_B, lo * f) for f in (1 / 1.01, 1.01))
    assert p_out < 0.05 < p_in


def test_spread_ratio_is_scale_and_shift_equivariant():
    scaled = [5 * v + 7 for v in SPREAD_A]
    assert stats.spread_ratio(scaled, SPREAD_B) == pytest.approx(15.0)
    lo, hi = stats.spread_ratio_interval(SPREAD_A, SPREAD_B)
    assert stats.spread_ratio_interval(scaled, SPREAD_B) == (pytest.approx(5 * lo), pytest.approx(5 * hi))


def test_spread_ratio_needs_five_targets_and_spread():
    assert stats.spread_ratio_interval(SPREAD_A[:4], SPREAD_B[:4]) is None  # n = 4 < MIN_TARGETS_SPREAD
    assert stats.spread_ratio_p(SPREAD_A[:4], SPREAD_B[:4]) is None
    assert stats.spread_ratio_interval(SPREAD_A, [2.0] * 5) is None  # no spread in b
    with pytest.raises(ValueError):
        stats.spread_ratio_p(SPREAD_A, SPREAD_B[:4])
