"""The report's interval level and its "win" rule, pinned by hand-worked numbers.

LEAD: these pin the CURRENT `reports/stats.py` (percentile bootstrap, win/tie/loss). When the new
statistics (t-interval, sign-flip test, verdicts) are merged, re-point both tests at the new API;
the hand-worked reasoning below says what each must still show.
"""
from __future__ import annotations

import pytest

from basefuse.experiments.records import RunRecord
from basefuse.reports.stats import bootstrap_mean_ci, summarize


def test_interval_is_95_percent():
    # One target, seeds [0, 0, 10]. A bootstrap mean draws 3 seeds with replacement; the number of 10s
    # is Binomial(3, 1/3): P(0) = 8/27, P(1) = 12/27, P(2) = 6/27, P(3) = 1/27 (CDF .296, .741, .963, 1).
    # 95% interval = 2.5th..97.5th percentile: 2.5% < .296 -> mean 0; 97.5% > .963 -> three 10s -> 10.
    # (At 90% the upper end would be the 95th percentile, inside the two-10s mass: 20/3.)
    ci = bootstrap_mean_ci([[0.0, 0.0, 10.0]], n_boot=20000, seed=0)
    assert ci.mean == pytest.approx(10 / 3)
    assert (ci.lo, ci.hi) == (pytest.approx(0.0), pytest.approx(10.0))
    assert bootstrap_mean_ci([[0.0, 0.0, 10.0]], n_boot=20000, seed=0, level=0.90).hi == pytest.approx(20 / 3)


def records(target: str, gains_points: list[float]) -> list[RunRecord]:
    rows = []
    for seed, g in enumerate(gains_points):
        for cond, fam, acc in (("pretrained", None, 0.50), ("fused", "all", 0.50 + g / 100)):
            rows.append(RunRecord(target=target, target_family="A", condition=cond, source_family=fam, seed=seed,
                                  accuracy=acc, macro_f1=acc))
    return rows


def test_mean_above_threshold_with_seeds_on_both_sides_of_zero_is_not_a_win():
    # t: gains +5, +5, -3 points: mean 2.33 >= the 0.5 threshold, but one seed loses. The seeds-only bootstrap
    # draws (-3, -3, -3) with probability 1/27 = 3.7% > 2.5%, so its interval reaches below 0: not a win.
    # u: gains +5, +6, +7: every resample is positive, so the interval is above 0 and the mean above 0.5: a win.
    s = summarize(records("t", [5.0, 5.0, -3.0]) + records("u", [5.0, 6.0, 7.0]), n_boot=20000)
    fused = s.by_label["fused (all)"]
    assert fused.per_target["t"].mean == pytest.approx(7 / 3)
    assert fused.per_target["t"].outcome != "win"
    assert fused.per_target["u"].outcome == "win"
    assert fused.wins == 1
