"""ColD Fusion in the report on equal terms: each iteration beside one-shot fusion over the same pool, cells averaged
over chain seeds (pairing only the chain seeds both bases have), seen and unseen chains apart. Every expected value
is worked by hand from the small table below."""
from __future__ import annotations

import json

import pytest

from basefuse.experiments.records import RunRecord
from builders import cold_beside_sections
from stats_reference import hull_interval, hull_p
from basefuse.reports import plots
from basefuse.reports.build import build_report
from basefuse.reports.completeness import completeness
from basefuse.reports.render import cold_tables
from basefuse.reports.summary import summarize

FAMILY = {"t1": "A", "t2": "A", "t3": "B"}
PRE = {"t1": (60, 62), "t2": (70, 70), "t3": (50, 54)}  # pretrained accuracy (points), seeds 0 and 1

# gain over pretrained per (condition, source family, iteration) -> target -> (chain seed 0, chain seed 1), the same
# at both target seeds; None: that run is missing
GAINS = {
    ("fused", "other families", None): {"t1": (1, 3), "t2": (0, 2), "t3": (2, 4)},   # one-shot over the pool
    ("cold", "other families", 1): {"t1": (1, 3), "t2": (0, 2), "t3": (2, 4)},       # = one-shot (same jobs)
    ("cold", "other families", 2): {"t1": (4, 4), "t2": (2, 4), "t3": (6, 6)},
    ("fused", "seen", None): {"t1": (5, 5), "t2": (4, 4), "t3": (6, 6)},
    ("cold", "seen", 1): {"t1": (5, 5), "t2": (4, 4), "t3": (6, 6)},
    ("cold", "seen", 2): {"t1": (8, 8), "t2": (6, 6), "t3": (7, 7)},
}
MISSING = {("cold", "other families", 2, "t3", 1, 1)}  # cold@2 (other families), t3, seed 1, chain seed 1


def rows() -> list[dict]:
    out = []
    for target, accs in PRE.items():
        for seed, a in enumerate(accs):
            out.append(dict(target=target, target_family=FAMILY[target], condition="pretrained", seed=seed,
                            accuracy=a / 100, macro_f1=0.5, job_key=f"pre-{target}-{seed}"))
    for (cond, fam, it), per_target in GAINS.items():
        for target, gains in per_target.items():
            for seed in (0, 1):
                for chain_seed, g in enumerate(gains):
                    if (cond, fam, it, target, seed, chain_seed) in MISSING:
                        continue
                    row = dict(target=target, target_family=FAMILY[target], condition=cond, source_family=fam,
                               seed=seed, chain_seed=chain_seed, accuracy=(PRE[target][seed] + g) / 100,
                               macro_f1=0.5, method="average", job_key=f"{cond}-{fam}-{it}-{target}-{seed}-{chain_seed}")
                    if it is not None:
                        row["iteration"] = it
                    out.append(row)
    return out




@pytest.fixture(scope="module")
def summary():
    return summarize([RunRecord(**r) for r in rows()])


def test_seen_and_unseen_chains_are_apart_each_beside_one_shot_over_its_own_pool(summary):
    unseen, seen = summary.cold
    assert (unseen.label, unseen.setting, unseen.one_shot) == ("cold (other families)", "unseen",
                                                               "fused (other families)")
    assert (seen.label, seen.setting, seen.one_shot) == ("cold (seen)", "seen", "fused (seen)")
    assert unseen.pool == "other families (target's family left out)"
    assert seen.pool == "all sources, target's train split included"
    assert unseen.chain_seeds == seen.chain_seeds == (0, 1)
    assert list(unseen.beside) == list(seen.beside) == [1, 2]


def test_a_cell_is_the_mean_over_the_chain_seeds_both_bases_have(summary):
    unseen = summary.cold[0]
    two = unseen.beside[2]
    # t3 seed 1 has cold@2 for chain seed 0 only, so the one-shot enters that cell with chain seed 0 only:
    # differences t1 (4-1 + 4-3)/2 = 2 at both seeds; t2 (2-0 + 4-2)/2 = 2; t3 seed 0 (6-2 + 6-4)/2 = 3, seed 1 6-2 = 4
    assert {t: e.mean for t, e in two.difference.per_target.items()} == pytest.approx({"t1": 2, "t2": 2, "t3": 3.5})
    assert two.difference.est.mean == pytest.approx(7.5 / 3)
    assert two.difference.est.interval == pytest.approx(hull_interval([2, 2, 3.5]))
    assert two.difference.est.p == pytest.approx(hull_p([2, 2, 3.5]))
    # the two gains on those cells: iteration t1 4, t2 3, t3 6; one-shot t1 2, t2 1, t3 (3 + 2) / 2
    assert two.iteration_gain.est.mean == pytest.approx(13 / 3)
    assert two.one_shot_gain.est.mean == pytest.approx(5.5 / 3)
    assert two.chain_seeds == (1, 2)
    # the one-shot's own gain row (every cell, both chain seeds averaged): t1 2, t2 1, t3 3
    assert unseen.one_shot_gain.est.mean == pytest.approx(2)
    # iteration 1 is the one-shot fusion itself: its difference is 0 in every cell (no interval: all equal)
    one = unseen.beside[1].difference
    assert one.est.mean == pytest.approx(0) and one.est.interval is None


def test_only_the_last_iteration_against_one_shot_is_the_chains_exploratory_row(summary):
    unseen, seen = summary.cold
    assert unseen.tested is unseen.beside[2].difference and seen.tested is seen.beside[2].difference
    # seen: cold@2 - fused (seen) per target 3, 2, 1
    assert seen.tested.est.mean == pytest.approx(2) and seen.tested.est.interval == pytest.approx(hull_interval([3, 2, 1]))
    rows = summary.exploratory()
    assert sum(c is unseen.tested for c in rows) == 1 and sum(c is seen.tested for c in rows) == 1
    assert not any(c is unseen.beside[1].difference for c in rows)
    assert unseen.tested.est.p_holm is None  # exploratory: only C1-C5 are Holm-adjusted


def test_cold_tables_state_setting_pool_and_chain_seeds(summary):
    gain_unseen, beside_unseen, gain_seen, beside_seen = cold_tables(summary)
    assert gain_unseen.title.startswith("ColD Fusion, unseen: gain over pretrained per iteration, cold (other families)")
    assert gain_seen.title.startswith("ColD Fusion, seen: gain over pretrained per iteration, cold (seen)")
    assert "Setting: seen (every source contributed, the target's own train split included; never its test texts" \
        in gain_seen.note
    assert "Chain seeds: 0, 1" in gain_unseen.note
    # every row names its pool; the one-shot row first
    assert [r[:2] for r in gain_unseen.rows] == [
        ["fused (other families) (one-shot)", "other families (target's family left out)"],
        ["cold@1 (other families)", "other families (target's family left out)"],
        ["cold@2 (other families)", "other families (target's family left out)"]]
    assert all(r[1] == "all sources, target's train split included" for r in gain_seen.rows + beside_seen.rows)
    lo, hi = hull_interval([2, 2, 3.5])
    assert beside_unseen.rows[1][:8] == ["2", "other families (target's family left out)", "+4.33", "+1.83", "+2.50",
                                         f"[{lo:+.2f}, {hi:+.2f}]", "3 targets, 2 seeds, 1–2 chain seeds", "+2.89"]
    # d_z: mean 2.5 / SD(2, 2, 3.5) = 2.5 / 0.866; an exploratory row: no p, no verdict
    assert len(beside_unseen.rows[1]) == 8
    # iteration 1 (every cell, both chain seeds: t1 2, t2 1, t3 3, as the one-shot) is shown for reading, not tested
    assert beside_unseen.rows[0][2:] == ["+2.00", "+2.00", "+0.00", "n/a (all equal, n=3)",
                                         "3 targets, 2 seeds, 2 chain seeds", "–"]


def test_report_files_show_seen_and_unseen_apart(tmp_path, summary):
    import matplotlib

    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows()))
    (run / "experiment.yaml").write_text("seeds: [0, 1]\n")
    md = build_report(run).markdown.read_text()
    unseen, seen = cold_beside_sections(md)
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        assert plots.plot_cold_iterations(summary, tmp_path / "cold.svg")
    svg = (tmp_path / "cold.svg").read_text()
    assert "cold (other families), unseen" in svg and "cold (seen), seen" in svg
    assert "fused (other families): one-shot, same pool (n = 3 targets, 2 seeds)" in svg


def test_runs_without_one_shot_over_the_pool_say_there_is_no_comparison():
    """Runs planned before the one-shot over a chain's pool existed (only fused (all) beside the chain)."""
    old = [r for r in rows() if not (r["condition"] == "fused")]
    for r in old:
        r.pop("chain_seed", None)
    unseen, seen = summarize([RunRecord(**r) for r in old]).cold
    assert unseen.beside == {} and unseen.tested is None and unseen.chain_seeds == ()
    table, _ = cold_tables(summarize([RunRecord(**r) for r in old]))[:2]
    assert "No one-shot fusion over the same pool (fused (other families)) shares a (target, seed) cell" in table.note
    assert "Chain seeds: not recorded" in table.note


def test_completeness_counts_chain_seeds_and_keeps_seen_apart():
    def run(seed, chain_seed, fam="other families", iteration=1):
        return dict(target="t1", target_family="A", condition="cold", source_family=fam, seed=seed,
                    iteration=iteration, chain_seed=chain_seed, weight_decay=0.0, ablation="main", n_fused=2,
                    sources=[])

    planned = [run(s, c, fam) for fam in ("other families", "seen") for s in (0, 1) for c in (0, 1)]
    # two records of one (target, seed) cell that differ only in chain seed: both match a planned run
    done = [RunRecord(**run(0, 0), accuracy=0.5, macro_f1=0.5), RunRecord(**run(0, 1), accuracy=0.5, macro_f1=0.5),
            RunRecord(**run(1, 0, "seen"), accuracy=0.5, macro_f1=0.5)]
    c = completeness(planned, done, plan_source="plan.json")
    assert c.planned == {"cold@1": 4, "cold@1 (seen)": 4}
    assert c.finished == {"cold@1": 2, "cold@1 (seen)": 1}
    # a chain seed that was never planned matches no planned cell, though chain seed 1 of its cell is still missing
    extra = RunRecord(**run(0, 2), accuracy=0.5, macro_f1=0.5)
    c = completeness(planned, [done[0], extra], plan_source="plan.json")
    assert (c.finished["cold@1"], c.unplanned) == (1, 1)
