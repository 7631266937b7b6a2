"""The report's numbers against hand-computed values, and properties of the bootstrap CI."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from basefuse.experiments.records import RunRecord
from basefuse.reports.stats import bootstrap_mean_ci, summarize

# Hand-made experiment: targets t1, t2 (family A) and t3 (family B), seeds 0 and 1.
# accuracy per (target) -> (seed 0, seed 1), at weight decay 0.0
ACC = {
    ("pretrained", None): {"t1": (0.60, 0.62), "t2": (0.70, 0.70), "t3": (0.50, 0.54)},
    ("fused", "all"): {"t1": (0.63, 0.65), "t2": (0.71, 0.72), "t3": (0.50, 0.53)},
    ("intertrained", "A"): {"t1": (0.58, 0.60), "t2": (0.69, 0.69), "t3": (0.55, 0.57)},
}
# at weight decay 0.01 every run of a condition has the same accuracy
ACC_WD = {("pretrained", None): 0.60, ("fused", "all"): 0.62, ("intertrained", "A"): 0.59}
FAMILY = {"t1": "A", "t2": "A", "t3": "B"}


def fixture_rows() -> list[dict]:
    rows = []
    for (cond, fam), per_target in ACC.items():
        for target, accs in per_target.items():
            for seed, acc in enumerate(accs):
                rows.append(dict(target=target, target_family=FAMILY[target], condition=cond, source_family=fam,
                                 seed=seed, weight_decay=0.0, accuracy=acc, macro_f1=acc - 0.05,
                                 job_key=f"{cond}-{fam}-{target}-{seed}-0"))
                rows.append(dict(target=target, target_family=FAMILY[target], condition=cond, source_family=fam,
                                 seed=seed, weight_decay=0.01, accuracy=ACC_WD[(cond, fam)], macro_f1=0.5,
                                 job_key=f"{cond}-{fam}-{target}-{seed}-0.01"))
    # number-of-models ablation on t1, t2: every run gains exactly n points over pretrained
    for n in (1, 2):
        for target in ("t1", "t2"):
            for seed in (0, 1):
                acc = ACC[("pretrained", None)][target][seed] + n / 100
                rows.append(dict(target=target, target_family="A", condition="fused", source_family="all",
                                 n_fused=n, seed=seed, weight_decay=0.0, accuracy=acc, macro_f1=acc,
                                 ablation="n_models", job_key=f"n{n}-{target}-{seed}"))
    return rows


def fixture_records() -> list[RunRecord]:
    return [RunRecord(**r) for r in fixture_rows()]


@pytest.fixture(scope="module")
def summary():
    return summarize(fixture_records(), n_boot=2000, seed=0)


def test_table1_matches_hand_computation(summary):
    assert summary.families == ["A", "B"]
    assert summary.targets == ["t1", "t2", "t3"]
    assert summary.labels == ["pretrained", "fused (all)", "intertrained (A)"]
    assert summary.weight_decay == 0.0
    t = summary.table1
    # pretrained: t1 = (60+62)/2 = 61, t2 = 70, t3 = (50+54)/2 = 52
    assert t["pretrained"]["A"] == pytest.approx((61 + 70) / 2)
    assert t["pretrained"]["B"] == pytest.approx(52)
    assert t["pretrained"]["mean"] == pytest.approx((61 + 70 + 52) / 3)
    # fused: t1 = 64, t2 = 71.5, t3 = 51.5
    assert t["fused (all)"]["A"] == pytest.approx((64 + 71.5) / 2)
    assert t["fused (all)"]["B"] == pytest.approx(51.5)
    assert t["fused (all)"]["mean"] == pytest.approx((64 + 71.5 + 51.5) / 3)
    # intertrained: t1 = 59, t2 = 69, t3 = 56
    assert t["intertrained (A)"]["mean"] == pytest.approx((59 + 69 + 56) / 3)


def test_gains_win_tie_loss_and_seed_std(summary):
    fused = summary.by_label["fused (all)"]
    # per-target gains: t1 (+3, +3), t2 (+1, +2), t3 (0, -1)
    assert {t: g.mean for t, g in fused.per_target.items()} == pytest.approx({"t1": 3, "t2": 1.5, "t3": -0.5})
    assert fused.gain.mean == pytest.approx((3 + 1.5 - 0.5) / 3)
    # t1: both seeds +3 -> CI is exactly the point; t3: seeds straddle 0 -> tie
    assert (fused.per_target["t1"].ci.lo, fused.per_target["t1"].ci.hi) == pytest.approx((3, 3))
    assert [fused.per_target[t].outcome for t in ("t1", "t2", "t3")] == ["win", "win", "tie"]
    assert (fused.wins, fused.ties, fused.losses) == (2, 1, 0)
    # the two-stage bootstrap can only produce means within [min gain, max gain]
    assert -1 - 1e-9 <= fused.gain.lo <= fused.gain.mean <= fused.gain.hi <= 3 + 1e-9

    inter = summary.by_label["intertrained (A)"]
    assert inter.gain.mean == pytest.approx((-2 - 1 + 4) / 3)
    assert (inter.wins, inter.ties, inter.losses) == (1, 0, 2)

    # std of two values a, b (ddof=1) is |a - b| / sqrt(2); averaged over targets
    r2 = math.sqrt(2)
    assert summary.by_label["pretrained"].seed_std == pytest.approx((2 / r2 + 0 + 4 / r2) / 3)
    assert fused.seed_std == pytest.approx((2 / r2 + 1 / r2 + 3 / r2) / 3)
    assert inter.seed_std == pytest.approx((2 / r2 + 0 + 2 / r2) / 3)
    assert summary.unpaired == 0


def test_weight_decay_table(summary):
    assert summary.weight_decays == [0.0, 0.01]
    acc, gain = summary.table2["fused (all)"][0.0]
    assert (acc, gain) == pytest.approx(((64 + 71.5 + 51.5) / 3, 4 / 3))
    assert summary.table2["fused (all)"][0.01] == pytest.approx((62.0, 2.0))
    assert summary.table2["intertrained (A)"][0.01] == pytest.approx((59.0, -1.0))
    assert summary.table2["pretrained"][0.01] == pytest.approx((60.0, 0.0))


def test_primary_weight_decay_can_be_chosen():
    s = summarize(fixture_records(), weight_decay=0.01, n_boot=200)
    assert s.table1["fused (all)"]["mean"] == pytest.approx(62.0)
    assert s.by_label["fused (all)"].gain.mean == pytest.approx(2.0)


def test_n_models_curve_is_exact_for_constant_gains(summary):
    assert [p.n_fused for p in summary.n_models] == [1, 2]
    for p in summary.n_models:
        assert (p.gain.mean, p.gain.lo, p.gain.hi) == pytest.approx((p.n_fused,) * 3)
        assert p.n_runs == 4


def test_unpaired_runs_are_counted_not_used():
    rows = fixture_rows() + [dict(target="t9", target_family="B", condition="fused", source_family="all", seed=0,
                                  accuracy=0.9, macro_f1=0.9)]
    s = summarize([RunRecord(**r) for r in rows], n_boot=200)
    assert s.unpaired == 1
    assert "t9" not in s.by_label["fused (all)"].per_target


# --- bootstrap CI -------------------------------------------------------------------------------

def test_all_equal_gains_give_a_point_ci():
    ci = bootstrap_mean_ci({"a": [1.5, 1.5, 1.5], "b": [1.5], "c": [1.5, 1.5]})
    assert (ci.mean, ci.lo, ci.hi) == (1.5, 1.5, 1.5)


def test_two_values_give_the_full_range():
    # resampled means of {0, 1} are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4:
    # the 2.5th and 97.5th percentiles are exactly 0 and 1
    for groups in ([[0.0, 1.0]], [[0.0], [1.0]]):
        ci = bootstrap_mean_ci(groups, n_boot=4000, seed=3)
        assert (ci.mean, ci.lo, ci.hi) == (0.5, 0.0, 1.0)


def test_empty_input_is_rejected():
    with pytest.raises(ValueError):
        bootstrap_mean_ci([[]])


groups_st = st.lists(st.lists(st.floats(-20, 20, allow_nan=False), min_size=1, max_size=5), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(groups_st, st.integers(0, 10_000))
def test_ci_contains_mean_and_is_reproducible(groups, seed):
    a = bootstrap_mean_ci(groups, n_boot=500, seed=seed)
    assert a.lo - 1e-9 <= a.mean <= a.hi + 1e-9
    assert a == bootstrap_mean_ci(groups, n_boot=500, seed=seed)
    assert a.mean == pytest.approx(np.mean([np.mean(g) for g in groups]))


@settings(max_examples=25, deadline=None)
@given(groups_st.filter(lambda g: np.ptp([x for v in g for x in v]) > 0.1))
def test_ci_shrinks_with_more_targets(groups):
    small = bootstrap_mean_ci(groups, n_boot=1000, seed=1)
    big = bootstrap_mean_ci(groups * 16, n_boot=1000, seed=1)  # same distribution, 16x the targets
    assert big.hi - big.lo < small.hi - small.lo
    assert big.mean == pytest.approx(small.mean)
