"""The planner's job graph: ColD Fusion chains, fusion methods side by side, nested number-of-models subsets, and
pruning. Expected values are counted by hand from the small configs written here."""
from __future__ import annotations

import pytest

from basefuse.errors import BasefuseError
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.leakage import LeakageError
from basefuse.experiments.protocol import TaskFacts, build_plan, check_no_leakage

FAMILIES = {"a": ["a1", "a2"], "b": ["b1", "b2"], "c": ["c1", "c2"]}


def plan_of(**over):
    data = {"families": FAMILIES, "seeds": [0], "conditions": ["pretrained", "fused"], "fused_groups": ["all"]}
    cfg = parse_experiment_config(data | over)
    return build_plan(cfg, {n: TaskFacts(10, f"{n}-s", f"{n}-t") for n in cfg.task_refs()}, "base", "fp")


def model_job(plan, job):
    return job.params["model"].get("job")


# ---- ColD Fusion -------------------------------------------------------------------------------

def test_cold_iteration_one_is_the_plain_source_finetunes_and_each_next_starts_from_the_last_fusion():
    plan = plan_of(cold_fusion={"iterations": 3}, targets=["a1"])
    runs = sorted((r for r in plan.runs if r.condition == "cold"), key=lambda r: r.iteration)
    assert [r.iteration for r in runs] == [1, 2, 3] and {r.source_family for r in runs} == {"other families"}
    fusions = [plan.jobs[model_job(plan, plan.jobs[r.job_key])] for r in runs]
    # iteration 1: the four sources outside family a, finetuned from the base (the very source jobs)
    assert set(fusions[0].deps) == {plan.sources[n] for n in ("b1", "b2", "c1", "c2")}
    assert fusions[0].params["base"] == {"base": "base", "fingerprint": "fp"}
    for prev, cur in zip(fusions, fusions[1:]):
        contributors = [plan.jobs[d] for d in cur.deps if d != prev.key]
        assert sorted(j.params["task"]["name"] for j in contributors) == ["b1", "b2", "c1", "c2"]
        assert all(j.params["model"] == {"job": prev.key, "kind": "fuse"} for j in contributors)
        assert cur.params["base"] == {"job": prev.key, "kind": "fuse"} and prev.key in cur.deps
        assert all(j.params["save"] for j in contributors)
    # finetunes: 5 sources (a2 for fused (all)) + 2 x 4 contributors + 5 target runs (pretrained, fused (all), cold@1..3);
    # fusions: fused (all) of a1 (5 sources) + 3 iterations
    assert sum(j.kind == "finetune" for j in plan.jobs.values()) == 5 + 8 + 5
    assert len(plan.fuse_jobs()) == 1 + 3


def test_one_chain_per_excluded_family_and_one_over_all_sources_for_held_out_targets():
    plan = plan_of(cold_fusion={"iterations": 2}, held_out={"h": ["h1"]})
    chain_of = {}
    for r in plan.runs:
        if r.condition == "cold" and r.iteration == 2:
            chain_of[r.target] = r.sources
            assert r.target_family not in {n[0] for n in r.sources}  # no source of the target's family
    assert chain_of["a1"] == chain_of["a2"] == ("b1", "b2", "c1", "c2")
    assert chain_of["c2"] == ("a1", "a2", "b1", "b2")
    assert chain_of["h1"] == ("a1", "a2", "b1", "b2", "c1", "c2")
    # 4 chains (without a, b, c, and all) x 2 iterations
    assert len({model_job(plan, plan.jobs[r.job_key]) for r in plan.runs if r.condition == "cold"}) == 4 * 2
    # the held-out target's chain, iteration 1, is the one-shot fusion of all sources: the same job
    h1 = {(r.condition, r.iteration): r.job_key for r in plan.runs if r.target == "h1"}
    assert h1[("cold", 1)] == h1[("fused", None)]


def test_cold_contributors_drawn_anew_each_iteration_and_only_chosen_iterations_evaluated():
    cold = {"iterations": 4, "contributors": 3, "seed": 7, "evaluate_iterations": [2, 4]}
    plan = plan_of(cold_fusion=cold, targets=["a1"])
    again = plan_of(cold_fusion=cold, targets=["a1"])
    assert set(plan.jobs) == set(again.jobs)  # the draw is seeded
    assert sorted(r.iteration for r in plan.runs if r.condition == "cold") == [2, 4]
    fusions = [j for j in plan.fuse_jobs().values() if j.label.startswith("cold")]
    assert len(fusions) == 4  # iterations 1 and 3 are built (later ones need them), not evaluated
    assert all(len(j.params["sources"]) == 3 for j in fusions)
    assert len({tuple(sorted(j.label.split()[-1].split("+"))) for j in fusions}) > 1  # the draws differ
    other = plan_of(cold_fusion=cold | {"seed": 8}, targets=["a1"])
    assert set(other.fuse_jobs()) != set(plan.fuse_jobs())


def test_cold_configs_that_cannot_work_are_refused():
    with pytest.raises(BasefuseError, match="contributors is 5, but a chain has only 4 sources"):
        plan_of(cold_fusion={"iterations": 2, "contributors": 5}, targets=["a1"])
    with pytest.raises(BasefuseError, match="evaluate_iterations lists iteration"):
        plan_of(cold_fusion={"iterations": 2, "evaluate_iterations": [3]})
    with pytest.raises(BasefuseError, match="every source is in its family"):
        build_plan(parse_experiment_config({"families": {"a": ["a1", "a2", "a3"]}, "cold_fusion": {"iterations": 1}}),
                   {n: TaskFacts(10, n, n) for n in ("a1", "a2", "a3")}, "base", "fp")


def test_a_hand_built_leak_through_a_cold_chain_is_refused_naming_the_target_and_the_path():
    plan = plan_of(cold_fusion={"iterations": 2}, held_out={"h": ["h1"]}, targets=["a1", "h1"])
    all_chain = next(model_job(plan, plan.jobs[r.job_key]) for r in plan.runs
                     if r.target == "h1" and r.condition == "cold" and r.iteration == 2)
    run = next(r for r in plan.runs if r.target == "a1" and r.condition == "cold" and r.iteration == 2)
    job = plan.jobs[run.job_key]
    params = dict(job.params, model={"job": all_chain, "kind": "fuse"})
    plan.jobs[run.job_key] = type(job)(job.kind, job.label, params, (all_chain,), job.key)
    with pytest.raises(LeakageError) as e:
        check_no_leakage(plan)
    msg = str(e.value)
    assert "target 'a1'" in msg and "cold@2 (other families)" in msg
    assert msg.endswith("cold it2 fuse a1+a2+b1+b2+c1+c2 <- cold it2 contributor a1 (chain a1+a2+b1+b2+c1+c2)")


# ---- fusion methods side by side ---------------------------------------------------------------

def test_two_fusion_methods_share_every_source_finetune():
    one = plan_of(targets=["a1"])
    two = plan_of(targets=["a1"], fusion=[{"method": "average"}, {"method": "ties", "params": {"density": 0.5}}])
    assert two.sources == one.sources
    conds = sorted(r.condition for r in two.runs)
    assert conds == ["fused", "fused[ties]", "pretrained"]
    f_avg, f_ties = (plan.jobs[model_job(two, two.jobs[r.job_key])] for plan, r in
                     ((two, next(r for r in two.runs if r.condition == c)) for c in ("fused", "fused[ties]")))
    assert set(f_avg.deps) == set(f_ties.deps) == {one.sources[n] for n in ("a2", "b1", "b2", "c1", "c2")}
    assert f_ties.params["method"] == "ties" and f_ties.params["method_params"] == {"density": 0.5}
    assert f_avg.key != f_ties.key


def test_fusion_names_are_distinct_conditions_and_clashes_are_refused():
    plan = plan_of(targets=["a1"], fusion=[{"method": "ties", "params": {"density": 0.2}},
                                           {"method": "ties", "params": {"density": 0.8}, "name": "ties80"}])
    assert sorted(r.condition for r in plan.runs if r.condition != "pretrained") == ["fused[ties80]", "fused[ties]"]
    with pytest.raises(BasefuseError, match="share a condition name"):
        plan_of(fusion=[{"method": "ties", "params": {"density": 0.2}}, {"method": "ties", "params": {"density": 0.8}}])
    with pytest.raises(BasefuseError, match=r"fusion\.1: .*weighted"):
        plan_of(fusion=[{"method": "average"}, {"method": "weighted"}])


# ---- number of models --------------------------------------------------------------------------

def test_nested_subsets_every_seed_and_no_main_grid_job_planned_twice():
    plan = plan_of(seeds=[0, 1], targets=["a1"], n_models={"enabled": True, "subsets": 2})
    abl = [r for r in plan.runs if r.ablation == "n_models"]
    pool = {"a2", "b1", "b2", "c1", "c2"}
    for order in (0, 1):
        chain = {r.n_fused: set(r.sources) for r in abl if r.order == order and r.seed == 0}
        assert sorted(chain) == [2, 3, 4, 5] and chain[5] == pool
        assert all(chain[k] < chain[k + 1] for k in (2, 3, 4))  # nested: one model added at a time
    assert {r.seed for r in abl} == {0, 1}
    # the full pool is the main grid's fused (all): the same job, not a second one
    main = {r.seed: r.job_key for r in plan.runs if r.condition == "fused" and r.ablation == "main"}
    assert {r.seed: r.job_key for r in abl if r.n_fused == 5} == main
    # target jobs: 2 seeds x (pretrained + fused (all)) + 2 seeds x distinct subsets of k = 2..4 (2 orders)
    subsets = {tuple(r.sources) for r in abl if r.n_fused < 5}
    assert len(plan.target_keys()) == 2 * 2 + 2 * len(subsets)
    assert len(plan.target_keys()) == len(set(plan.target_keys()))


def test_subsets_within_the_targets_family():
    plan = plan_of(families={"a": ["a1", "a2", "a3", "a4"], "b": ["b1", "b2"]}, targets=["a1"],
                   n_models={"enabled": True, "within_family": True})
    abl = [r for r in plan.runs if r.ablation == "n_models"]
    assert sorted(r.n_fused for r in abl) == [2, 3] and all(r.source_family == "a" for r in abl)
    assert all(set(r.sources) <= {"a2", "a3", "a4"} for r in abl)


# ---- pruning -----------------------------------------------------------------------------------

def test_sources_nothing_uses_are_not_planned():
    # the own-family fusion of target a1 needs a2 only... with one source that is a2's model itself
    plan = plan_of(targets=["a1"], fused_groups=["family"], family_bases="own", allow_single_source_fusion=True)
    assert set(plan.sources) == {"a2"}
    assert len(plan.jobs) == 1 + 2  # a2's finetune, pretrained -> a1, fused (a) -> a1
    pretrained_only = plan_of(targets=["a1"], conditions=["pretrained"])
    assert not pretrained_only.sources and len(pretrained_only.jobs) == 1


def test_a_config_the_planner_refuses_ties_no_folder_to_it(tmp_path):
    """Refused at planning (before any job): no experiment.yaml or run.json is left, so the fixed config may
    use the same --out without --force."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from builders import make_tiny_experiment

    from basefuse.experiments.runner import _check_run_dir, run_experiment

    data = make_tiny_experiment(tmp_path, cold_fusion={"iterations": 1, "contributors": 5})  # y has 3 sources
    run = tmp_path / "run"
    with pytest.raises(BasefuseError, match="contributors is 5"):
        run_experiment(parse_experiment_config(data), run, progress=False)
    assert not (run / "run.json").exists() and not (run / "experiment.yaml").exists()
    _check_run_dir(parse_experiment_config(data | {"cold_fusion": {"iterations": 1}}), run, force=False)
