"""The report's interval level and its verdict rule, pinned by hand-worked numbers."""
from __future__ import annotations

import math

import pytest

from basefuse.reports import stats


def test_interval_is_95_percent():
    # Per-target mean gains 0, 3, 6: mean 3, sample sd 3, se 3/sqrt(3) = sqrt(3); skewness 0, so Hall's interval is the
    # t-interval and so is their hull. Textbook t quantiles, df 2: t_0.975 = 4.303 (95%), t_0.95 = 2.920 (90%).
    lo, hi = stats.t_interval([0.0, 3.0, 6.0])
    assert (lo, hi) == (pytest.approx(3 - 4.303 * math.sqrt(3), abs=2e-3),
                        pytest.approx(3 + 4.303 * math.sqrt(3), abs=2e-3))
    est = stats.estimate({"a": [0.0], "b": [3.0], "c": [6.0]})
    assert est.interval == (pytest.approx(lo), pytest.approx(hi))
    lo90, hi90 = stats.mean_interval([0.0, 3.0, 6.0], level=0.90)
    assert hi90 == pytest.approx(3 + 2.920 * math.sqrt(3), abs=2e-3)


def test_mean_above_zero_with_seeds_on_both_sides_of_zero_is_not_better():
    # Gains +5, +5, -3 over three seeds: mean 7/3, sd sqrt(64/3) = 4.619, se 2.667, t = 0.875 (df 2):
    # the 95% interval [7/3 - 4.303 * 2.667, ...] reaches below 0 and p is about 0.47: inconclusive.
    mixed = stats.seed_estimate([5.0, 5.0, -3.0])
    assert mixed.mean == pytest.approx(7 / 3)
    assert mixed.interval[0] == pytest.approx(7 / 3 - 4.303 * math.sqrt(64 / 3) / math.sqrt(3), abs=2e-3)
    assert stats.seed_verdict(mixed) == stats.INCONCLUSIVE
    # +5, +6, +7: mean 6, se 1/sqrt(3), interval [3.52, 8.48], t = 10.39, p about 0.009: better.
    assert stats.seed_verdict(stats.seed_estimate([5.0, 6.0, 7.0])) == stats.BETTER
    assert stats.seed_verdict(stats.seed_estimate([-5.0, -6.0, -7.0])) == stats.WORSE
    # Two seeds are never enough for a per-target verdict, whatever the gains.
    assert stats.seed_verdict(stats.seed_estimate([9.0, 10.0])) == stats.TOO_FEW_SEEDS


def test_five_consistent_targets_reach_a_verdict():
    # Gains 1..5: mean 3, sd 1.581, se 0.7071, t = 4.243 (df 4), two-sided p = 0.0132; skewness 0, so Hall's p is the
    # t-test's. Interval 3 +- 2.776 * 0.7071 = [1.037, 4.963]. (The exact sign flip the report used before could not go
    # below 2/32 = 0.0625 at five targets.)
    est = stats.estimate({t: [g] for t, g in zip("abcde", [1, 2, 3, 4, 5])})
    assert est.p == pytest.approx(0.0132, abs=1e-4)
    assert est.interval == (pytest.approx(1.037, abs=1e-3), pytest.approx(4.963, abs=1e-3))
    assert stats.verdict(est) == stats.BETTER


def test_one_large_target_is_not_a_consistent_gain():
    # Six targets, all gains positive, one far larger: mean 30.5/6 = 5.083, sd 12.208, se 4.984, t = 1.02 (p about
    # 0.35) and the t-interval 5.083 +- 2.571 * 4.984 = [-7.73, +17.90] reaches below 0: inconclusive.
    est = stats.estimate({t: [g] for t, g in zip("abcdef", [0.1, 0.1, 0.1, 0.1, 0.1, 30.0])})
    assert est.interval[0] <= 30.5 / 6 - 2.571 * 12.208 / math.sqrt(6) + 5e-3  # the hull is at least the t-interval
    assert est.p > 0.3
    assert stats.verdict(est) == stats.INCONCLUSIVE


@pytest.mark.parametrize(("interval", "p", "expected"), [
    ((0.5, 2.0), 0.01, stats.BETTER),
    ((-2.0, -0.5), 0.01, stats.WORSE),
    ((0.5, 2.0), 0.06, stats.INCONCLUSIVE),    # interval above 0 but p too large
    ((-0.5, 2.0), 0.01, stats.INCONCLUSIVE),   # p small but the interval reaches 0
    (None, 0.01, stats.INCONCLUSIVE),          # no interval printed
])
def test_verdict_needs_the_interval_and_the_p_value(interval, p, expected):
    est = stats.Estimate(mean=1.0, interval=interval, p=p, n_targets=9, seeds=(3, 3))
    assert stats.verdict(est) == expected
    assert stats.verdict(stats.Estimate(1.0, interval, 0.2, 9, (3, 3), p_holm=p)) == expected  # the adjusted p decides
