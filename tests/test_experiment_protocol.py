"""The experiment plan: leave-one-out fusion, intertraining choice, dedup, validation. Pure: no model runs."""
from __future__ import annotations

import pytest
import yaml

from basefuse.errors import BasefuseError
from basefuse.experiments.config import builtin_config_path, load_experiment_config, parse_experiment_config
from basefuse.experiments.protocol import TaskFacts, build_plan, check_no_leakage

FAMILIES = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"]}
SIZES = {"a1": 100, "a2": 300, "a3": 200, "b1": 50, "b2": 60, "b3": 70}


def facts(sizes=SIZES):
    return {n: TaskFacts(train_size=s, fingerprint_source=f"{n}-s", fingerprint_target=f"{n}-t")
            for n, s in sizes.items()}


def cfg(**over):
    data = {"families": FAMILIES, "seeds": [0, 1]} | over
    return parse_experiment_config(data)


def plan_for(**over):
    return build_plan(cfg(**over), facts(), "base", "fp")


def sources_of(plan, run):
    """The source task names whose models built the base of a run."""
    key_to_task = {j.key: n for n, j in plan.source_jobs().items()}
    names = set()
    for dep in plan.target_jobs()[run.job_key].deps:
        if dep in key_to_task:
            names.add(key_to_task[dep])
        else:
            names.update(key_to_task[k] for k in plan.fuse_jobs()[dep].deps)
    return names


def test_no_target_is_ever_finetuned_from_its_own_source_model():
    plan = plan_for()
    assert plan.runs
    for run in plan.runs:
        assert run.target not in sources_of(plan, run)
        if run.condition == "fused":
            assert sources_of(plan, run) == set(run.sources)


def test_leakage_guard_catches_a_leaky_plan():
    plan = plan_for()
    run = next(r for r in plan.runs if r.condition == "fused" and r.source_family == "all")
    leaky = plan.source_jobs()[run.target].key
    job = plan.target_jobs()[run.job_key]
    plan.jobs[run.job_key] = type(job)(job.kind, job.label, job.params, job.deps + (leaky,), job.key)
    with pytest.raises(BasefuseError, match="leakage"):
        check_no_leakage(plan)


def test_fused_family_leaves_out_target_and_all_uses_every_other_source():
    plan = plan_for()
    runs = [r for r in plan.runs if r.target == "a1" and r.seed == 0 and r.condition == "fused"]
    by_family = {r.source_family: set(r.sources) for r in runs}
    assert by_family == {"a": {"a2", "a3"}, "b": {"b1", "b2", "b3"}, "all": {"a2", "a3", "b1", "b2", "b3"}}


def test_intertrained_is_the_largest_remaining_source_of_each_family():
    plan = plan_for()
    inter = {r.source_family: r.sources for r in plan.runs
             if r.target == "a2" and r.seed == 0 and r.condition == "intertrained"}
    assert inter == {"a": ("a3",), "b": ("b3",)}  # a2 (the largest) is the target itself, so a3
    inter = {r.source_family: r.sources for r in plan.runs
             if r.target == "b1" and r.seed == 0 and r.condition == "intertrained"}
    assert inter == {"a": ("a2",), "b": ("b3",)}


def test_counts_and_deduplication():
    plan = plan_for()
    # 6 targets x 2 seeds x (pretrained + 3 fused + 2 intertrained)
    assert len(plan.runs) == 6 * 2 * 6
    assert len(plan.target_jobs()) == len(plan.runs)  # every run is distinct work
    assert len(plan.source_jobs()) == 6
    # fused(b) is the same model for every target outside b: fusions are shared, not repeated
    fused_b_outside = {r.job_key for r in plan.runs if r.condition == "fused" and r.source_family == "b"
                       and r.target.startswith("a")}
    deps = {plan.target_jobs()[k].deps for k in fused_b_outside}
    assert len(deps) == 1
    # distinct fusions: per family: 3 leave-one-out + 1 full; all: 6 leave-one-out
    assert len(plan.fuse_jobs()) == 2 * 4 + 6


def test_keys_change_with_what_decides_the_output():
    a = plan_for()
    b = build_plan(cfg(), facts(), "base", "other-fingerprint")
    assert set(a.target_jobs()).isdisjoint(b.target_jobs())
    c = plan_for(finetune={"learning_rate": 3e-4})
    assert set(a.target_jobs()).isdisjoint(c.target_jobs())
    # sources follow source_finetune, which defaults to finetune; once set, target hparams leave them alone
    e = plan_for(source_finetune={}, finetune={"learning_rate": 3e-4})
    f = plan_for(source_finetune={})
    assert a.source_jobs()["a1"].key != c.source_jobs()["a1"].key
    assert e.source_jobs()["a1"].key == f.source_jobs()["a1"].key
    d = plan_for(seeds=[0, 1])
    assert set(a.target_jobs()) == set(d.target_jobs())  # same config, same keys
    moved = build_plan(cfg(), facts(), "/elsewhere/base", "fp")  # same weights, another path
    assert set(a.target_jobs()) == set(moved.target_jobs()) and set(a.fuse_jobs()) == set(moved.fuse_jobs())


def test_family_bases_own_keeps_only_the_targets_family():
    plan = plan_for(family_bases="own")
    for run in plan.runs:
        if run.condition != "pretrained":
            assert run.source_family in ("all", run.target_family)
    assert len(plan.runs) == 6 * 2 * 4  # pretrained, fused (own), fused (all), intertrained (own)


def test_weight_decay_grid_and_n_models_ablation():
    plan = plan_for(weight_decays=[0.0, 0.01], n_models={"enabled": True, "subsets": 2})
    wds = {r.weight_decay for r in plan.runs if r.ablation == "main"}
    assert wds == {0.0, 0.01}
    abl = [r for r in plan.runs if r.ablation == "n_models" and r.target == "a1"]
    assert {r.n_fused for r in abl} == {2, 3, 4, 5}  # min_k 2: one model would be intertraining
    assert all("a1" not in r.sources and len(r.sources) == r.n_fused for r in abl)
    assert {r.seed for r in abl} == {r.seed for r in plan.runs if r.ablation == "main"}  # every seed


def test_target_alone_in_its_family_is_refused_with_a_clear_message():
    with pytest.raises(BasefuseError, match="only source task of family 'solo'"):
        build_plan(parse_experiment_config({"families": FAMILIES | {"solo": ["s1"]}, "targets": ["s1"]}),
                   facts(SIZES | {"s1": 10}), "base", "fp")


def test_single_source_left_needs_explicit_permission():
    fams = {"a": ["a1", "a2"], "b": ["b1", "b2", "b3"]}
    sizes = {k: v for k, v in SIZES.items() if k != "a3"}
    with pytest.raises(BasefuseError, match="fusing one model is intertraining"):
        build_plan(parse_experiment_config({"families": fams}), facts(sizes), "base", "fp")
    plan = build_plan(parse_experiment_config({"families": fams, "allow_single_source_fusion": True}),
                      facts(sizes), "base", "fp")
    assert any(r.condition == "fused" and r.n_fused == 1 for r in plan.runs)


def test_held_out_targets_are_never_sources():
    plan = build_plan(parse_experiment_config({"families": FAMILIES, "held_out": {"c": ["c1"]}, "targets": ["c1"]}),
                      facts(SIZES | {"c1": 10}), "base", "fp")
    assert "c1" not in plan.source_jobs()
    assert {r.target_family for r in plan.runs} == {"c"}
    all_run = next(r for r in plan.runs if r.source_family == "all")
    assert len(all_run.sources) == 6


@pytest.mark.parametrize("data, message", [
    ({"families": FAMILIES, "sedes": [0]}, "unknown key 'sedes'"),
    ({"families": FAMILIES, "finetune": {"lr": 1}}, "unknown key 'finetune.lr'"),
    ({"families": FAMILIES, "seeds": "zero"}, "seeds"),
    ({"families": {"a": ["x1", "x2"], "b": ["x1", "y"]}}, "duplicate task name 'x1'"),
    ({"families": FAMILIES, "targets": ["nope"]}, "target 'nope' is not a task"),
    ({"families": FAMILIES, "conditions": ["fussed"]}, "conditions"),
    ({"families": {"a": ["x1", {"name": "x2", "spec": "x1"}]}}, "tasks 'x1' and 'x2' load the same data"),
    ({"families": {"a": []}}, "family 'a' lists no tasks"),
    ({"families": FAMILIES, "weight_decays": [-0.1]}, "weight_decays.0"),
    ({"families": FAMILIES, "seeds": [-1]}, "seeds.0"),
    ({"families": FAMILIES, "fusion": {"method": "avg"}}, "unknown method 'avg'"),
    ({"families": FAMILIES, "fusion": {"method": "ties", "params": {"density": 2}}}, "density"),
])
def test_bad_configs_are_one_line_errors_naming_the_key(data, message):
    with pytest.raises(BasefuseError) as e:
        parse_experiment_config(data, "x.yaml")
    assert message in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith("x.yaml")


def test_yaml_errors_and_builtin_configs(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("families: [a\n")
    with pytest.raises(BasefuseError, match="not valid YAML"):
        load_experiment_config(bad)
    for name in ("demo", "paper"):
        c = load_experiment_config(builtin_config_path(name))
        sizes = {n: 100 + i for i, n in enumerate(c.task_refs())}
        plan = build_plan(c, facts(sizes), "base", "fp")
        assert plan.runs and all(r.target not in sources_of(plan, r) for r in plan.runs)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"families": FAMILIES}))
    assert load_experiment_config(good).seeds == [0, 1, 2, 3, 4]
