"""Open condition vocabulary, fusion methods side by side, and ColD Fusion in the report, against numbers
worked out by hand on a small synthetic results.jsonl."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from basefuse.errors import BasefuseError
from basefuse.experiments.records import RunRecord, condition_name
from basefuse.reports import plots
from basefuse.reports.build import build_report
from basefuse.reports.completeness import completeness
from basefuse.reports.load import read_results
from basefuse.reports.render import headline
from basefuse.reports.summary import summarize
from stats_reference import hull_interval, hull_p

FAMILY = {"t1": "A", "t2": "A", "t3": "B"}

# accuracy (points) per (condition, source family, iteration) -> target -> (seed 0, seed 1); weight decay 0
ACC = {
    ("pretrained", None, None): {"t1": (60, 62), "t2": (70, 70), "t3": (50, 54)},
    ("fused", "all", None): {"t1": (63, 65), "t2": (71, 72), "t3": (50, 53)},       # gains 3,3 | 1,2 | 0,-1
    ("fused[ties]", "all", None): {"t1": (62, 66), "t2": (72, 72), "t3": (51, 55)},  # gains 2,4 | 2,2 | 1,1
    ("distilled", "all", None): {"t1": (61, 63), "t2": (72, 72), "t3": (56, 60)},    # gains 1,1 | 2,2 | 6,6
    ("intertrained", "A", None): {"t1": (58, 60), "t2": (69, 69), "t3": (55, 57)},
    ("cold", "other families", 1): {"t1": (64, 64), "t2": (71, 73), "t3": (53,)},    # gains 4,2 | 1,3 | 3
    ("cold", "other families", 2): {"t1": (65, 67), "t2": (74, 74), "t3": (56, 60)},  # gains 5,5 | 4,4 | 6,6
}


def rows(acc=ACC) -> list[dict]:
    out = []
    for (cond, fam, it), per_target in acc.items():
        for target, accs in per_target.items():
            for seed, a in enumerate(accs):
                row = dict(target=target, target_family=FAMILY[target], condition=cond, source_family=fam, seed=seed,
                           accuracy=a / 100, macro_f1=0.5, job_key=f"{cond}-{fam}-{it}-{target}-{seed}")
                if it is not None:
                    row |= dict(iteration=it, method="average")
                out.append(row)
    return out


def records(acc=ACC) -> list[RunRecord]:
    return [RunRecord(**r) for r in rows(acc)]



def write_run(tmp_path: Path, lines: list[dict], config: str = "seeds: [0, 1]\n") -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run / "experiment.yaml").write_text(config)
    return run


@pytest.fixture(scope="module")
def summary():
    return summarize(records())


# ---- records and loading -------------------------------------------------------------------

def test_labels_old_and_new_rows():
    old = dict(target="t1", target_family="A", seed=0, accuracy=0.5, macro_f1=0.5)  # no iteration, no method
    assert RunRecord(**old, condition="pretrained").base_label == "pretrained"
    assert RunRecord(**old, condition="fused", source_family="all").base_label == "fused (all)"
    assert RunRecord(**old, condition="intertrained", source_family="reviews").base_label == "intertrained (reviews)"
    assert RunRecord(**old, condition="fused[ties]", source_family="all", method="ties").base_label == \
        "fused[ties] (all)"
    # the planner names a base's condition with this rule: the default method (average) is plain "fused"
    assert [condition_name("fused", m) for m in (None, "average", "ties")] == ["fused", "fused", "fused[ties]"]
    cold = RunRecord(**old, condition="cold", source_family="other families", iteration=3, method="average")
    assert cold.base_label == "cold@3 (other families)"


def test_any_condition_loads_and_a_broken_row_is_named(tmp_path):
    lines = rows()
    run = write_run(tmp_path, lines)
    loaded, warnings = read_results(run / "results.jsonl")
    assert warnings == [] and len(loaded) == len(lines)
    assert {r.condition for r in loaded} == {"pretrained", "fused", "fused[ties]", "distilled", "intertrained", "cold"}
    del lines[4]["target"]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(BasefuseError, match=r"results.jsonl:5: field 'target' is missing; fix or remove that line"):
        read_results(run / "results.jsonl")
    lines[4]["target"] = "t1"
    lines[5]["iteration"] = 0  # ColD iterations count from 1
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(BasefuseError, match=r"results.jsonl:6: field 'iteration' is invalid"):
        read_results(run / "results.jsonl")
    lines[5]["iteration"], lines[6]["condition"] = 1, " "
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(BasefuseError, match=r"results.jsonl:7: field 'condition' is empty"):
        read_results(run / "results.jsonl")


def test_display_order_known_kinds_then_unknown_and_iterations_numerically(summary):
    assert summary.labels == ["pretrained", "fused (all)", "fused[ties] (all)", "intertrained (A)",
                              "cold@1 (other families)", "cold@2 (other families)", "distilled (all)"]
    acc = {("pretrained", None, None): ACC[("pretrained", None, None)],
           **{("cold", "other families", it): ACC[("cold", "other families", 2)] for it in (10, 2, 1)},
           ("aaa", "all", None): ACC[("fused", "all", None)]}
    assert summarize(records(acc)).labels == [
        "pretrained", "cold@1 (other families)", "cold@2 (other families)", "cold@10 (other families)", "aaa (all)"]


# ---- every label in every table --------------------------------------------------------------

def test_new_conditions_are_rows_of_every_table(summary):
    # Table 1: fused[ties] t1 64, t2 72, t3 53; distilled t1 62, t2 72, t3 58
    assert summary.table1["fused[ties] (all)"] == pytest.approx({"A": 68, "B": 53, "mean": (64 + 72 + 53) / 3})
    assert summary.table1["distilled (all)"] == pytest.approx({"A": 67, "B": 58, "mean": 64})
    gains = {c.a: c for c in summary.vs_pretrained}
    ties, distilled = gains["fused[ties] (all)"], gains["distilled (all)"]
    # per-target mean gains: ties 3, 2, 1; distilled 1, 2, 6
    assert {t: e.mean for t, e in ties.per_target.items()} == pytest.approx({"t1": 3, "t2": 2, "t3": 1})
    assert ties.est.mean == pytest.approx(2) and ties.est.interval == pytest.approx(hull_interval([3, 2, 1]))
    assert distilled.est.mean == pytest.approx(3) and distilled.est.interval == pytest.approx(hull_interval([1, 2, 6]))
    # sign flips of (3, 2, 1) and of (1, 2, 6): only all-plus and all-minus reach the observed |sum|
    assert ties.est.p == pytest.approx(hull_p([3, 2, 1]))
    assert distilled.est.p == pytest.approx(hull_p([1, 2, 6]))
    assert (ties.est.n_targets, ties.est.seeds) == (3, (2, 2))
    assert ties.est.p_holm is None and not ties.primary  # exploratory: no adjusted p, no verdict
    assert (summary.primary_comparison.a, summary.primary_comparison.b) == ("fused (all)", "pretrained")
    assert {s.label for s in summary.spread} >= {"fused[ties] (all)", "distilled (all)"}
    assert {s.label for s in summary.seed_std} >= {"fused[ties] (all)", "distilled (all)"}
    # fused vs intertrained: every fusion method over all sources; ties per seed t1 4, 6; t2 3, 3; t3 -4, -2
    inter = {c.a: c for c in summary.vs_intertrained if c.b == "intertrained (A)"}
    assert list(inter) == ["fused (all)", "fused[ties] (all)"]
    assert inter["fused[ties] (all)"].est.mean == pytest.approx((5 + 3 - 3) / 3)



def test_each_fusion_method_is_compared_with_averaging_over_the_same_sources(summary, tmp_path):
    # fused[ties] - fused per seed: t1 -1, +1 (mean 0); t2 +1, 0 (0.5); t3 +1, +2 (1.5); distilled is no fusion
    # method, cold a chain, so neither is compared
    assert [(c.a, c.b) for c in summary.vs_method] == [("fused[ties] (all)", "fused (all)")]
    est = summary.vs_method[0].est
    assert est.mean == pytest.approx((0 + 0.5 + 1.5) / 3) and est.n_targets == 3 and est.seeds == (2, 2)
    assert summary.vs_method[0] in summary.exploratory()
    md = build_report(write_run(tmp_path, rows())).markdown.read_text()
    lo, hi = hull_interval([0, 0.5, 1.5])
    assert "Exploratory — each fusion method against averaging" in md
    assert f"| fused[ties] (all) vs fused (all) | +0.67 | [{lo:+.2f}, {hi:+.2f}] | 3 targets, 2 seeds |" in md
    only_ties = {k: v for k, v in ACC.items() if k[0] != "fused"}
    assert summarize(records(only_ties)).vs_method == []  # one fusion method: nothing to compare

def test_report_files_show_the_new_rows_with_n(tmp_path):
    paths = build_report(write_run(tmp_path, rows()))
    md, page = paths.markdown.read_text(), paths.html.read_text()
    assert "| fused[ties] (all) | 68.00 | 53.00 | 63.00 |" in md
    assert "| distilled (all) | 67.00 | 58.00 | 64.00 |" in md
    lo, hi = hull_interval([1, 2, 6])
    assert f"| distilled (all) vs pretrained | +3.00 | [{lo:+.2f}, {hi:+.2f}] | 3 targets, 2 seeds | +1.13 |" in md
    # (d_z above: 3 / 2.646)
    assert "| fused[ties] (all) vs intertrained (A) | +1.67 |" in md
    for label in ("fused[ties] (all)", "distilled (all)", "cold@2 (other families)"):
        assert md.count(f"| {label} |") >= 4  # Table 1, per target, spread, seed std
        assert page.count(f"<td>{label}</td>") >= 4
    # claims measured here: C1, C2, C5 (C3 needs 5 targets, C4 two weight decays)
    assert [p.name for p in paths.figures] == ["claim-C1.png", "claim-C2.png", "claim-C5.png", "gains_per_target.png",
                                               "fused_vs_intertrained.png", "spread.png", "seed_std.png",
                                               "cold_iterations.png"]


def test_plots_show_the_new_labels_with_n(summary, tmp_path):
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}):  # keep text as text, to read it back
        assert plots.plot_target_gains(summary, tmp_path / "gains.svg")
        assert plots.plot_seed_std(summary, tmp_path / "std.svg", records())
    gains, std = (tmp_path / "gains.svg").read_text(), (tmp_path / "std.svg").read_text()
    for label, mean, per_target in (("fused[ties] (all)", 2, [3, 2, 1]), ("distilled (all)", 3, [1, 2, 6])):
        lo, hi = hull_interval(per_target)
        assert f"{label}: mean +{mean:.2f} points, 95% CI [{lo:+.2f}, {hi:+.2f}] (n = 3 targets, 2 seeds)" in gains
    assert "cold@1 (other families): mean +2.67 points" in gains
    assert "fused[ties] (all)" in std and "distilled (all)" in std


# ---- the primary comparison is never replaced -------------------------------------------------

def test_without_fused_all_rows_the_primary_says_so():
    acc = {k: v for k, v in ACC.items() if k[0] != "fused"}
    s = summarize(records(acc))
    assert s.primary == ("fused (all)", "pretrained") and s.primary_comparison is None
    assert s.claims[0].verdict == "not measured"  # C1 has no runs: no other base takes its place
    text = headline(s)
    assert text.startswith("C1 fused (all) vs pretrained: no paired runs, nothing to conclude.")
    assert "no 'fused (all)' rows" in text and "fused[ties] (all)" in text and "no other base takes its place" in text


def test_a_configured_primary_may_name_a_fusion_method(tmp_path):
    run = write_run(tmp_path, rows(), config='seeds: [0, 1]\nprimary: ["fused[ties] (all)", pretrained]\n')
    paths = build_report(run)
    c = paths.summary.primary_comparison
    assert (c.a, c.b) == ("fused[ties] (all)", "pretrained") and c.est.p_holm is None
    assert headline(paths.summary).startswith(
        "C1 (confirmatory), fused[ties] (all) vs pretrained: +2.00 points")


# ---- ColD Fusion -----------------------------------------------------------------------------

def test_cold_gain_per_iteration(summary):
    (chain,) = summary.cold
    assert chain.label == "cold (other families)" and list(chain.iterations) == [1, 2]
    one, two = chain.iterations[1], chain.iterations[2]
    # iteration 1: per-target means 3, 2, 3 (t3 has seed 0 only); iteration 2: 5, 4, 6
    assert one.est.mean == pytest.approx(8 / 3) and one.est.interval == pytest.approx(hull_interval([3, 2, 3]))
    assert (one.est.n_targets, one.est.seeds) == (3, (1, 2))
    assert two.est.mean == pytest.approx(5) and two.est.interval == pytest.approx(hull_interval([5, 4, 6]))
    assert two.est.p == pytest.approx(hull_p([5, 4, 6]))
    # the rows are the gain table's own, so Holm counts each once
    assert sum(c is one for c in summary.exploratory()) == 1
    assert sum(c is one for c in summary.vs_pretrained) == 1


def test_cold_tables_and_plot_in_the_report(tmp_path, summary):
    import matplotlib

    paths = build_report(write_run(tmp_path, rows()))
    md, page = paths.markdown.read_text(), paths.html.read_text()
    title = ("ColD Fusion, unseen: gain over pretrained per iteration, cold (other families) (points, weight decay "
             "0)")
    assert f"### {title}" in md and f"<h3>{title}</h3>" in page
    lo, hi = hull_interval([3, 2, 3])
    pool = "other families (target's family left out)"
    # d_z: (8/3) / SD(3, 2, 3) = (8/3) / 0.577 = +4.62
    assert f"| cold@1 (other families) | {pool} | +2.67 | [{lo:+.2f}, {hi:+.2f}] | 3 targets, 1–2 seeds | +4.62 |" in md
    # these runs have no one-shot fusion over the chain's pool: fused (all) (another pool) is never set beside it
    assert "No one-shot fusion over the same pool (fused (other families))" in md
    assert not any(f"cold@{i} (other families) vs fused (all)" in md for i in (1, 2))
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        assert plots.plot_cold_iterations(summary, tmp_path / "cold.svg")
    svg = (tmp_path / "cold.svg").read_text()
    assert svg.count("n=3") == 2 and "cold (other families), unseen" in svg


def test_no_cold_rows_no_cold_table(tmp_path):
    acc = {k: v for k, v in ACC.items() if k[0] != "cold"}
    s = summarize(records(acc))
    assert s.cold == [] and not plots.plot_cold_iterations(s, tmp_path / "x.png")


# ---- number of models per fusion method; completeness ------------------------------------------

def test_n_models_one_curve_per_fusion_method():
    lines = rows()
    for cond, per_model in (("fused", 1), ("fused[ties]", 2)):
        for k in (1, 2):
            for target in ("t1", "t2"):
                for seed in (0, 1):
                    acc = ACC[("pretrained", None, None)][target][seed] + per_model * k
                    lines.append(dict(target=target, target_family="A", condition=cond, source_family="all",
                                      n_fused=k, seed=seed, accuracy=acc / 100, macro_f1=0.5, ablation="n_models",
                                      job_key=f"n-{cond}-{k}-{target}-{seed}"))
    s = summarize([RunRecord(**r) for r in lines])
    # fused gains k points, fused[ties] 2k: never pooled into one mean
    assert [(p.condition, p.n_fused, p.gain.est.mean) for p in s.n_models] == [
        ("fused", 1, pytest.approx(1)), ("fused", 2, pytest.approx(2)),
        ("fused[ties]", 1, pytest.approx(2)), ("fused[ties]", 2, pytest.approx(4))]
    assert s.n_models[3].gain.a == "fused[ties] (2 models)" and s.n_models[3].n_runs == 4


def test_completeness_counts_new_conditions_and_iterations():
    def run(condition, seed, iteration=None, fam="all"):
        return dict(target="t1", target_family="A", condition=condition, source_family=fam, seed=seed,
                    iteration=iteration, weight_decay=0.0, ablation="main", n_fused=None, sources=[])

    planned = [run("fused[ties]", s) for s in (0, 1)] + [run("distilled", 0)]
    planned += [run("cold", s, it, "other families") for it in (1, 2) for s in (0, 1)]
    done = [RunRecord(**p, accuracy=0.5, macro_f1=0.5) for p in planned if p["iteration"] != 2 and p["seed"] == 0]
    # a cold run of iteration 3 matches no planned cell, though target, condition, family and seed do
    done.append(RunRecord(**run("cold", 0, 3, "other families"), accuracy=0.5, macro_f1=0.5))
    c = completeness(planned, done, plan_source="plan.json")
    assert c.planned == {"fused[ties]": 2, "distilled": 1, "cold@1": 2, "cold@2": 2}
    assert c.finished == {"fused[ties]": 1, "distilled": 1, "cold@1": 1, "cold@2": 0}
    assert (c.n_finished, c.n_planned, c.unplanned) == (3, 7, 1)
    # plan.json rows written before `iteration` existed still match records without it
    old = [{k: v for k, v in p.items() if k != "iteration"} for p in planned[:3]]
    assert completeness(old, done[:2], plan_source="plan.json").finished == {"fused[ties]": 1, "distilled": 1}
