"""Review of the report statistics: no interval printed as zero-width, and no verdict from zero spread.

Accuracies on a small test set are coarse (a 24-row test set moves in steps of 4.17 points), so equal gains
over seeds or targets happen; the values below are worked by hand.
"""
from __future__ import annotations

from basefuse.reports import stats
from basefuse.reports.render import interval_text


def test_equal_values_give_no_zero_width_interval():
    assert stats.t_interval([4.17, 4.17, 4.17]) is None  # sd 0: t-interval would be [4.17, 4.17]
    assert stats.mean_interval([4.17, 4.17, 4.17]) is None and stats.mean_p([4.17, 4.17, 4.17]) is None
    assert stats.hall_interval([2.0, 2.0, 2.0]) is None and stats.hall_p([2.0, 2.0, 2.0]) is None
    # no spread in one base: the ratio of spreads would be 0 or infinite, its interval [0, 0]
    assert stats.spread_ratio_interval([1.0, 2.0, 3.0, 4.0, 5.0], [2.0] * 5) is None
    assert stats.spread_ratio_p([2.0] * 5, [2.0] * 5) is None
    # every seed std equal on every target: log ratios all 0, no interval of their mean
    assert stats.mean_interval(stats.log_std_ratios([0.0] * 4, [0.0] * 4)) is None
    assert stats.estimate({"a": [1.0], "b": [1.0], "c": [1.0]}).interval is None
    assert stats.t_interval([0.1 + 0.2, 0.3, 0.3]) is None  # equal but for float rounding (5.6e-17 apart)
    assert stats.mean_interval([0.1 + 0.2, 0.3, 0.3]) is None


def test_equal_seed_gains_are_not_called_better():
    # Three seeds, each +4.17: the t-test's sd is 0, so it "proves" a gain no three values can prove.
    assert stats.seed_verdict(stats.seed_estimate([4.17, 4.17, 4.17])) == stats.INCONCLUSIVE
    assert stats.seed_verdict(stats.seed_estimate([4.17, 4.17, 8.33])) == stats.INCONCLUSIVE  # t = 4.01 < t(0.975, 2) = 4.303 by hand


def test_missing_interval_says_why():
    assert interval_text(None, 2) == "n/a (n=2)"
    assert interval_text(None, 3) == "n/a (all equal, n=3)"


def test_narrow_interval_is_not_printed_zero_width_after_rounding():
    assert interval_text((1.001, 1.004), 9) == "[+1.0010, +1.0040]"
    assert interval_text((0.501, 0.504), 9, signed=False) == "[0.5010, 0.5040]"
    assert interval_text((-0.56, 1.62), 9) == "[-0.56, +1.62]"
