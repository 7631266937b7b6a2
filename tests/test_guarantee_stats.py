"""The report's interval level and its verdict rule, pinned by hand-worked numbers."""
from __future__ import annotations

import math

import pytest

from basefuse.reports import stats


def test_interval_is_95_percent():
    # Per-target mean gains 0, 3, 6: mean 3, sample sd 3, se 3/sqrt(3) = sqrt(3).
    # Textbook t quantiles, df 2: t_0.975 = 4.303 (95%), t_0.95 = 2.920 (90%).
    lo, hi = stats.t_interval([0.0, 3.0, 6.0])
    assert (lo, hi) == (pytest.approx(3 - 4.303 * math.sqrt(3), abs=2e-3),
                        pytest.approx(3 + 4.303 * math.sqrt(3), abs=2e-3))
    est = stats.estimate({"a": [0.0], "b": [3.0], "c": [6.0]})
    assert est.interval == (pytest.approx(lo), pytest.approx(hi))
    lo90, hi90 = stats.t_interval([0.0, 3.0, 6.0], level=0.90)
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


def test_five_positive_targets_cannot_reach_significance_but_six_can():
    # Exact sign flip, two-sided: all n gains positive gives p = 2 / 2^n: 0.0625 for 5, 0.03125 for 6.
    assert stats.sign_flip_p([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 / 32)
    assert stats.verdict(stats.estimate({t: [g] for t, g in zip("abcde", [1, 2, 3, 4, 5])})) == stats.INCONCLUSIVE
    assert stats.sign_flip_p([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == pytest.approx(2 / 64)
    assert stats.verdict(stats.estimate({t: [g] for t, g in zip("abcdef", [1, 2, 3, 4, 5, 6])})) == stats.BETTER


def test_a_significant_sign_test_with_an_interval_across_zero_is_not_better():
    # Six targets, all gains positive, one far larger: the exact sign-flip p is 2/64 = 0.031 < 0.05, but the
    # t-interval is wide: mean 30.5/6 = 5.083, sd 12.208, se 4.984, t_0.975,5 = 2.571 -> [-7.73, +17.90].
    gains = [0.1, 0.1, 0.1, 0.1, 0.1, 30.0]
    est = stats.estimate({t: [g] for t, g in zip("abcdef", gains)})
    assert est.p == pytest.approx(2 / 64)
    assert est.interval[0] == pytest.approx(30.5 / 6 - 2.571 * 12.208 / math.sqrt(6), abs=5e-3)
    assert stats.verdict(est) == stats.INCONCLUSIVE
