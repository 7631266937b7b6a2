"""The report's numbers against hand-computed values (the new tables: test_report_tables.py)."""
from __future__ import annotations

import pytest

from basefuse.experiments.records import RunRecord
from basefuse.reports.summary import summarize

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
    return summarize(fixture_records())


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


def test_primary_weight_decay_can_be_chosen():
    s = summarize(fixture_records(), weight_decay=0.01)
    assert s.table1["fused (all)"]["mean"] == pytest.approx(62.0)
    assert s.vs_pretrained[0].est.mean == pytest.approx(2.0)


def test_n_models_curve_is_exact_for_constant_gains(summary):
    assert [p.n_fused for p in summary.n_models] == [1, 2]
    for p in summary.n_models:
        assert p.gain.est.mean == pytest.approx(p.n_fused)
        assert p.gain.est.interval is None  # 2 targets: below the minimum
        assert p.n_runs == 4


def test_unpaired_runs_are_counted_not_used():
    rows = fixture_rows() + [dict(target="t9", target_family="B", condition="fused", source_family="all", seed=0,
                                  accuracy=0.9, macro_f1=0.9)]
    s = summarize([RunRecord(**r) for r in rows])
    assert s.unpaired == 1
    assert "t9" not in s.vs_pretrained[0].per_target
