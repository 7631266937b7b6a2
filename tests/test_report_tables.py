"""Each table of the report against numbers worked out by hand, and the small-sample maths against
published values (Student t and chi-square tables)."""
from __future__ import annotations

import math

import pytest

from basefuse.experiments.records import RunRecord
from basefuse.reports import stats
from basefuse.reports.render import headline, interval_text
from basefuse.reports.stats import Estimate
from basefuse.reports.summary import summarize
from stats_reference import hull_interval, hull_p
from test_report_stats import fixture_records

T975_DF2 = 4.302653  # Student t, 97.5% quantile, 2 degrees of freedom (any t table)


# ---- the maths against tables and hand counts -------------------------------------------------

@pytest.mark.parametrize("df, table", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (8, 2.3060),
                                       (30, 2.0423)])
def test_t_quantile_matches_the_t_table(df, table):
    assert stats.t_quantile(0.975, df) == pytest.approx(table, abs=1e-4)
    assert stats.t_quantile(0.025, df) == pytest.approx(-table, abs=1e-4)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 with m = 3: 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04)
    assert stats.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None}) == pytest.approx(
        {"a": 0.03, "b": 0.06, "c": 0.06, "d": None})


def test_below_three_targets_no_interval_and_n_is_printed():
    est = stats.estimate({"t1": [1.0, 2.0], "t2": [3.0]})
    assert est.interval is None and est.n_targets == 2 and est.seeds == (1, 2)
    assert interval_text(est.interval, est.n_targets) == "n/a (n=2)"
    assert stats.verdict(est) == stats.INCONCLUSIVE


def test_verdict_needs_interval_and_test():
    def est(lo, hi, p, p_holm=None, n=9):
        return Estimate((lo + hi) / 2, (lo, hi), p, n, (3, 3), p_holm)
    assert stats.verdict(est(0.2, 1.0, 0.01)) == stats.BETTER
    assert stats.verdict(est(-1.0, -0.2, 0.01)) == stats.WORSE
    assert stats.verdict(est(0.2, 1.0, 0.08)) == stats.INCONCLUSIVE    # interval alone is not enough
    assert stats.verdict(est(-0.1, 1.0, 0.01)) == stats.INCONCLUSIVE   # nor the test alone
    assert stats.verdict(est(0.2, 1.0, 0.01, p_holm=0.2)) == stats.INCONCLUSIVE  # secondary: Holm p decides


def test_per_target_verdict_from_seeds():
    assert stats.seed_verdict(stats.seed_estimate([4.0, 6.0])) == stats.TOO_FEW_SEEDS
    # [5, 5.5, 6]: mean 5.5, sd 0.5, t = 5.5 / (0.5 / sqrt 3) = 19.05; for df = 2, p = 1 - t / sqrt(2 + t^2)
    t = 5.5 / (0.5 / math.sqrt(3))
    e = stats.seed_estimate([5.0, 5.5, 6.0])
    assert e.p == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert e.interval == pytest.approx((5.5 - T975_DF2 * 0.5 / math.sqrt(3), 5.5 + T975_DF2 * 0.5 / math.sqrt(3)))
    assert stats.seed_verdict(e) == stats.BETTER
    # [1, 2, 3]: interval 2 -+ 4.303 / sqrt 3 = [-0.48, 4.48] includes 0
    assert stats.seed_verdict(stats.seed_estimate([1.0, 2.0, 3.0])) == stats.INCONCLUSIVE


# ---- the tables on the hand-made fixture of test_report_stats ----------------------------------
# accuracy (points) seed 0/1 at wd 0:  pretrained t1 60/62 t2 70/70 t3 50/54
#                                      fused (all) t1 63/65 t2 71/72 t3 50/53
#                                      intertrained (A) t1 58/60 t2 69/69 t3 55/57
# at wd 0.01 every run: pretrained 60, fused (all) 62, intertrained (A) 59

@pytest.fixture(scope="module")
def summary():
    return summarize(fixture_records())



def test_gain_over_pretrained_is_the_primary(summary):
    c = summary.primary_comparison
    assert (c.a, c.b) == ("fused (all)", "pretrained")
    # per-target mean gains: t1 (3 + 3) / 2 = 3, t2 (1 + 2) / 2 = 1.5, t3 (0 - 1) / 2 = -0.5
    assert {t: e.mean for t, e in c.per_target.items()} == pytest.approx({"t1": 3, "t2": 1.5, "t3": -0.5})
    assert c.est.mean == pytest.approx(4 / 3)
    assert c.est.interval == pytest.approx(hull_interval([3, 1.5, -0.5]))  # [-3.43, +5.70]
    # an exploratory row: its p (the mean test's, as C1's) is kept in the record, never printed
    assert c.est.p == pytest.approx(hull_p([3, 1.5, -0.5]))
    assert c.est.p_holm is None and c.verdict == stats.INCONCLUSIVE
    assert all(c.target_verdict(t) == stats.TOO_FEW_SEEDS for t in ("t1", "t2", "t3"))


def test_fused_vs_intertrained_paired_per_target_and_seed(summary):
    (c,) = [c for c in summary.vs_intertrained if (c.a, c.b) == ("fused (all)", "intertrained (A)")]
    # per seed: t1 63-58, 65-60 = 5, 5; t2 71-69, 72-69 = 2, 3; t3 50-55, 53-57 = -5, -4
    assert c.values == {"t1": pytest.approx([5, 5]), "t2": pytest.approx([2, 3]), "t3": pytest.approx([-5, -4])}
    assert c.est.mean == pytest.approx((5 + 2.5 - 4.5) / 3)
    assert c.est.interval == pytest.approx(hull_interval([5, 2.5, -4.5]))
    assert c.est.p == pytest.approx(hull_p([5, 2.5, -4.5]))  # kept, not printed (exploratory)
    assert c.est.p_holm is None  # exploratory: Holm runs over C1-C5 only


def test_weight_decay_gains_and_their_difference(summary):
    rows = {w.label: w for w in summary.weight_decay_rows}
    fused = rows["fused (all)"]
    assert fused.gains[0.01].est.mean == pytest.approx(62 - 60)
    # difference per (target, seed) = gain at 0.01 (+2) - gain at 0: t1 2-3, 2-3; t2 2-1, 2-2; t3 2-0, 2+1
    assert fused.difference.values == {"t1": pytest.approx([-1, -1]), "t2": pytest.approx([1, 0]),
                                       "t3": pytest.approx([2, 3])}
    assert fused.difference.est.mean == pytest.approx((-1 + 0.5 + 2.5) / 3)
    assert fused.difference.est.interval == pytest.approx(hull_interval([-1, 0.5, 2.5]))
    inter = rows["intertrained (A)"]
    # gain at 0.01 is 59 - 60 = -1; at 0: t1 -2, -2; t2 -1, -1; t3 +5, +3 -> differences 1, 0, -5 per target
    assert inter.difference.est.mean == pytest.approx((1 + 0 - 5) / 3)


def test_dependence_on_the_target(summary):
    spread = {s.label: s for s in summary.spread}["fused (all)"]
    # std of (3, 1.5, -0.5): variance ((5/3)^2 + (1/6)^2 + (11/6)^2) / 2 = 37/12
    var = ((5 / 3) ** 2 + (1 / 6) ** 2 + (11 / 6) ** 2) / 2
    assert spread.std == pytest.approx(math.sqrt(var))
    # no interval (the chi-square one under-covers skewed gains): the descriptive row has none to print
    assert not hasattr(spread, "interval")
    assert (spread.helped, spread.n_targets) == (2, 3)


def seed_std_records() -> list[RunRecord]:
    """pretrained has 3 seeds everywhere; fused (all) has seeds 0, 1 on t1, t2 and only seed 0 on t3."""
    acc = {"pretrained": {"t1": (60, 64, 50), "t2": (70, 72, 90), "t3": (50, 58, 52)},
           "fused": {"t1": (62, 63), "t2": (74, 70), "t3": (55,)}}
    rows = []
    for cond, per_target in acc.items():
        for target, accs in per_target.items():
            for seed, a in enumerate(accs):
                rows.append(RunRecord(target=target, target_family="A", condition=cond,
                                      source_family="all" if cond == "fused" else None, seed=seed,
                                      accuracy=a / 100, macro_f1=0.5, job_key=f"{cond}{target}{seed}"))
    return rows


def test_seed_std_over_the_same_targets_and_seeds():
    s = summarize(seed_std_records())
    (row,) = s.seed_std
    # matched: t1 and t2 (t3 has one fused seed), seeds 0 and 1 only; std of two values = |a - b| / sqrt 2
    r2 = math.sqrt(2)
    assert (row.n_targets, row.seeds) == (2, (2, 2))
    assert row.std == pytest.approx((1 / r2 + 4 / r2) / 2)
    assert row.reference_std == pytest.approx((4 / r2 + 2 / r2) / 2)  # not pretrained's std over all 3 seeds
    assert row.difference.est.mean == pytest.approx(((1 - 4) / r2 + (4 - 2) / r2) / 2)
    assert row.difference.est.interval is None  # 2 targets: n/a


def test_a_configured_primary_replaces_the_default():
    s = summarize(fixture_records(), primary=("fused (all)", "intertrained (A)"))
    c = s.primary_comparison
    assert (c.a, c.b) == ("fused (all)", "intertrained (A)")
    c1 = s.claims[0]
    assert (c1.id, c1.a, c1.b) == ("C1", "fused (all)", "intertrained (A)")  # the deprecated alias names C1
    assert s.claims[4].b == "pretrained"  # and no other claim


def test_only_the_five_claims_are_holm_adjusted(summary):
    # exploratory rows carry no adjusted p (and the report prints none for them)
    assert all(c.est.p_holm is None for c in summary.exploratory() if c.est is not None)
    claims = [c for c in summary.claims if c.p is not None]
    # Holm written out over the claims with a p-value: the i-th smallest times (m - i), monotone, capped at 1
    order = sorted(range(len(claims)), key=lambda i: claims[i].p)
    expected, running = {}, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(claims) - rank) * claims[i].p))
        expected[i] = running
    assert [c.p_holm for c in claims] == pytest.approx([expected[i] for i in range(len(claims))])


def test_headline_names_the_primary_and_no_other(summary):
    text = headline(summary)
    assert text.startswith("C1 (confirmatory), fused (all) vs pretrained: +1.33 points")
    assert "3 targets, 2 seeds" in text and "inconclusive" in text
    # without the primary's runs the headline does not fall back on another base
    rows = [r for r in fixture_records() if r.base_label != "fused (all)"]
    assert "no paired runs" in headline(summarize(rows))
