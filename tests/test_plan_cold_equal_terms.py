"""ColD Fusion planned on equal terms: one-shot fusion over each chain's own pool (iteration 1's very job when every
source contributes), chain seeds that rerun the whole chain, and the seen setting, whose rows may have trained on the
target's train split but never on its test texts. Job counts are worked by hand in each test."""
from __future__ import annotations

import hashlib

import pytest

from basefuse.errors import BasefuseError
from basefuse.experiments.config import builtin_config_path, load_experiment_config, parse_experiment_config
from basefuse.experiments.leakage import LeakageError, TaskContent
from basefuse.experiments.protocol import TaskFacts, build_plan, check_no_leakage

FAMILIES = {"a": ["a1", "a2"], "b": ["b1", "b2"], "c": ["c1", "c2"]}


def config(**over):
    data = {"families": FAMILIES, "seeds": [0], "conditions": ["pretrained"], "targets": ["a1"]}
    return parse_experiment_config(data | over)


def plan_of(contents: dict[str, TaskContent] | None = None, **over):
    cfg = config(**over)
    facts = {n: TaskFacts(10, f"{n}-s", f"{n}-t", (contents or {}).get(n)) for n in cfg.task_refs()}
    return build_plan(cfg, facts, "base", "fp")


def kinds(plan) -> tuple[int, int]:
    return (sum(j.kind == "finetune" for j in plan.jobs.values()), sum(j.kind == "fuse" for j in plan.jobs.values()))


def model_of(plan, run):
    return plan.jobs[run.job_key].params["model"]["job"]


def runs(plan, **match):
    return [r for r in plan.runs if all(getattr(r, k) == v for k, v in match.items())]


# ---- one-shot fusion over the same pool ---------------------------------------------------------

def test_iteration_one_is_the_one_shot_fusion_over_the_chains_pool_the_same_job():
    plan = plan_of(cold_fusion={"iterations": 2})
    (shot,) = runs(plan, condition="fused")
    (first,) = runs(plan, condition="cold", iteration=1)
    assert shot.source_family == first.source_family == "other families"
    assert shot.sources == ("b1", "b2", "c1", "c2") and shot.n_fused == 4 and shot.chain_seed == 0
    assert shot.job_key == first.job_key  # the target finetune, and so the fusion under it, is one job
    fusion = plan.jobs[model_of(plan, shot)]
    assert set(fusion.deps) == {plan.sources[n] for n in ("b1", "b2", "c1", "c2")}
    assert fusion.params["base"] == {"base": "base", "fingerprint": "fp"}
    # finetunes: 4 sources + 4 iteration-2 contributors + 3 target finetunes (pretrained, cold@1 = one-shot, cold@2)
    # fusions: 2 iterations (the one-shot is iteration 1)
    assert kinds(plan) == (4 + 4 + 3, 2)


def test_with_k_contributors_the_one_shot_fuses_the_whole_pool_not_iteration_ones_draw():
    plan = plan_of(cold_fusion={"iterations": 1, "contributors": 2})
    (shot,) = runs(plan, condition="fused")
    (first,) = runs(plan, condition="cold", iteration=1)
    assert shot.job_key != first.job_key
    assert len(plan.jobs[model_of(plan, shot)].deps) == 4 and len(plan.jobs[model_of(plan, first)].deps) == 2
    # finetunes: 4 sources (the one-shot needs all 4; iteration 1 draws 2 of them) + 3 target finetunes
    # fusions: iteration 1 + the one-shot
    assert kinds(plan) == (4 + 3, 2)


def test_cpu_config_keeps_every_job_it_planned_before_and_adds_only_the_one_shots_over_the_pools():
    """cold-fusion-cpu draws 3 of 6 per iteration: the one-shot over each chain's 6 tasks is new work (3 fusions,
    3 targets x 3 seeds target finetunes); every other job is the one commit f52ed61 planned (digest of its 84
    sorted keys, computed with that commit)."""
    cfg = load_experiment_config(builtin_config_path("cold-fusion-cpu"))
    plan = build_plan(cfg, {n: TaskFacts(100, f"{n}-s", f"{n}-t") for n in cfg.task_refs()}, "base", "fp")
    shots = [r for r in plan.runs if r.condition == "fused" and r.source_family == "other families"]
    new = {r.job_key for r in shots} | {model_of(plan, r) for r in shots}
    assert len(new) == 3 * 3 + 3
    old = sorted(set(plan.jobs) - new)
    assert hashlib.sha256(" ".join(old).encode()).hexdigest()[:16] == "0640edbfa03c39d9"


# ---- chain seeds ----------------------------------------------------------------------------------

def test_chain_seeds_rerun_the_draws_and_the_contributor_seeds():
    plan = plan_of(cold_fusion={"iterations": 2, "chain_seeds": [0, 1]})
    # per chain seed: 4 iteration-1 contributors (chain seed 0: the plain source finetunes, seed 0; chain seed 1:
    # new finetunes from the base, seed 1), 4 iteration-2 contributors, 2 fusions; target finetunes: pretrained +
    # per chain seed cold@1 (= the one-shot) and cold@2
    assert kinds(plan) == (2 * (4 + 4) + 1 + 2 * 2, 2 * 2)
    assert len(plan.runs) == 1 + 2 * 3
    contributor_seeds = {(j.params["task"]["name"], j.params["seed"]) for j in plan.jobs.values()
                         if j.params.get("save")}
    assert contributor_seeds == {(n, s) for n in ("b1", "b2", "c1", "c2") for s in (0, 1)}
    it2 = {r.chain_seed: r for r in runs(plan, condition="cold", iteration=2)}
    assert it2[0].job_key != it2[1].job_key
    shots = {r.chain_seed: r.job_key for r in runs(plan, condition="fused")}
    firsts = {r.chain_seed: r.job_key for r in runs(plan, condition="cold", iteration=1)}
    assert shots == firsts and shots[0] != shots[1]  # each chain seed's one-shot is its own iteration 1
    assert all(r.record_fields()["chain_seed"] == r.chain_seed for r in plan.runs if r.condition != "pretrained")


def test_chain_seeds_draw_anew_and_chain_seed_zero_is_the_single_chain():
    cold = {"iterations": 3, "contributors": 2, "seed": 5}
    single = plan_of(cold_fusion=cold)
    assert set(plan_of(cold_fusion=cold | {"chain_seeds": [0]}).jobs) == set(single.jobs)
    both = plan_of(cold_fusion=cold | {"chain_seeds": [0, 1]})
    assert set(single.jobs) < set(both.jobs)
    draws = {}
    for j in both.fuse_jobs().values():
        if j.label.startswith("cold"):
            chain_seed = 1 if j.label.endswith("(chain seed 1)") else 0
            draws.setdefault(chain_seed, []).append(tuple(sorted(both.jobs[d].params["task"]["name"]
                                                                 for d in j.deps if both.jobs[d].kind == "finetune")))
    assert len(draws[0]) == len(draws[1]) == 3 and draws[0] != draws[1]  # seeded by the chain seed too


# ---- the seen setting -------------------------------------------------------------------------------

def test_seen_chain_draws_on_every_source_the_target_included_and_held_out_targets_get_no_seen_rows():
    plan = plan_of(cold_fusion={"iterations": 2, "evaluate": "both"}, held_out={"h": ["h1"]}, targets=["a1", "h1"])
    seen = runs(plan, source_family="seen")
    assert {(r.condition, r.iteration, r.target) for r in seen} == {("fused", None, "a1"), ("cold", 1, "a1"),
                                                                    ("cold", 2, "a1")}
    assert all(r.sources == ("a1", "a2", "b1", "b2", "c1", "c2") for r in seen)
    (shot,) = [r for r in seen if r.condition == "fused"]
    assert shot.job_key == next(r.job_key for r in seen if r.iteration == 1)
    assert plan.sources["a1"] in plan.jobs[model_of(plan, shot)].deps  # the target's own source finetune
    # h1's unseen chain is over all six sources, the seen chain's pool: the same jobs, other rows
    h1 = {r.iteration: r.job_key for r in runs(plan, target="h1", condition="cold")}
    a1_seen = {r.iteration: r.job_key for r in seen if r.condition == "cold"}
    assert {k: model_of(plan, plan.runs[[r.job_key for r in plan.runs].index(v)]) for k, v in h1.items()} == \
        {k: model_of(plan, plan.runs[[r.job_key for r in plan.runs].index(v)]) for k, v in a1_seen.items()}


def test_evaluate_both_job_count():
    plan = plan_of(cold_fusion={"iterations": 2, "evaluate": "both"})
    # unseen (b1, b2, c1, c2): 4 source finetunes, 4 iteration-2 contributors, 2 fusions; seen (all six): 2 more
    # source finetunes (a1, a2), 6 iteration-2 contributors, 2 fusions; target finetunes: pretrained + per setting
    # cold@1 (= its one-shot) and cold@2
    assert kinds(plan) == (4 + 4 + 2 + 6 + 1 + 2 * 2, 2 + 2)
    assert len(plan.runs) == 1 + 2 * 3


def test_seen_needs_a_target_that_is_a_source():
    with pytest.raises(BasefuseError, match="no target is a source task"):
        plan_of(cold_fusion={"iterations": 1, "evaluate": "seen"}, held_out={"h": ["h1"]}, targets=["h1"])


def test_only_seen_rows_may_have_trained_on_the_target():
    """The provenance rule lets the target's task into a seen row's base only: an unseen row given the seen
    chain's model is refused, naming the target and the path."""
    plan = plan_of(cold_fusion={"iterations": 2, "evaluate": "both"})
    seen_model = model_of(plan, runs(plan, source_family="seen", condition="cold", iteration=2)[0])
    check_no_leakage(plan)  # as planned: passes
    run = runs(plan, source_family="other families", condition="cold", iteration=2)[0]
    job = plan.jobs[run.job_key]
    plan.jobs[run.job_key] = type(job)(job.kind, job.label, dict(job.params, model={"job": seen_model,
                                                                                    "kind": "fuse"}),
                                       (seen_model,), job.key)
    with pytest.raises(LeakageError, match=r"target 'a1' would be finetuned from base 'cold@2 \(other families\)', "
                                           r"which was trained on 'a1': cold it2 fuse a1\+a2\+b1\+b2\+c1\+c2 <- "
                                           r"cold it2 contributor a1"):
        check_no_leakage(plan)


def content(name: str, leak: tuple[str, ...] = ()) -> TaskContent:
    """Ten test texts, twenty train texts; `leak`: extra texts in its train split."""
    return TaskContent(f"fp-{name}", tuple(f"{name} test {i}" for i in range(10)),
                       frozenset({f"{name} train {i}" for i in range(20)} | set(leak)))


def test_seen_rows_still_refuse_the_targets_test_texts():
    """a1's own train split holds 2 of its 10 test texts: harmless where a1 never contributed (unseen), refused where
    its train split is in the base (seen), by the overlap check that counts the target's own task like any other."""
    contents = {n: content(n) for n in ("a2", "b1", "b2", "c1", "c2")}
    contents["a1"] = content("a1", leak=("a1 test 0", "a1 test 7"))
    plan_of(contents, cold_fusion={"iterations": 1})  # unseen only: passes
    with pytest.raises(LeakageError, match=r"2 of the 10 test texts of target 'a1' \(20.0%\) occur in the training "
                                           r"data of base 'fused \(seen\)' \(from 'a1': 2\)"):
        plan_of(contents, cold_fusion={"iterations": 1, "evaluate": "seen"})
    clean = contents | {"a1": content("a1")}
    plan = plan_of(clean, cold_fusion={"iterations": 1, "evaluate": "seen"})
    # one row per (target, base job): fused (seen) and cold@1 (seen) are one base
    (row,) = [r for r in plan.leakage["rows"] if r["base"] == "fused (seen)"]
    assert row["overlap"] == 0 and row["provenance"] == ["a1", "a2", "b1", "b2", "c1", "c2"]


# ---- config --------------------------------------------------------------------------------------

def test_old_evaluate_list_still_loads_and_fingerprints_are_unchanged():
    fam = {"families": {"a": ["a1", "a2"], "b": ["b1", "b2"]}}
    # the values commit f52ed61 gave, before chain_seeds and the seen/unseen `evaluate` existed
    assert parse_experiment_config(fam | {"cold_fusion": {"iterations": 3}}).fingerprint() == "904025e5381746a7"
    old = parse_experiment_config(fam | {"cold_fusion": {"iterations": 4, "contributors": 3, "seed": 7,
                                                         "evaluate": [2, 4]}})
    assert old.cold_fusion.evaluate_iterations == [2, 4] and old.cold_fusion.evaluate == "unseen"
    assert old.fingerprint() == "b7dbbe84d439b8af"
    new = fam | {"cold_fusion": {"iterations": 4, "contributors": 3, "seed": 7, "evaluate_iterations": [2, 4]}}
    assert parse_experiment_config(new).fingerprint() == "b7dbbe84d439b8af"
    for change in ({"chain_seeds": [0, 1]}, {"evaluate": "seen"}, {"evaluate": "both"}):
        changed = fam | {"cold_fusion": new["cold_fusion"] | change}
        assert parse_experiment_config(changed).fingerprint() != "b7dbbe84d439b8af", change
    with pytest.raises(BasefuseError, match="list the iterations under evaluate_iterations only"):
        parse_experiment_config(fam | {"cold_fusion": {"iterations": 2, "evaluate": [1], "evaluate_iterations": [2]}})
    with pytest.raises(BasefuseError, match="chain_seeds: has duplicates"):
        parse_experiment_config(fam | {"cold_fusion": {"iterations": 2, "chain_seeds": [1, 1]}})
    with pytest.raises(BasefuseError, match="cold_fusion.evaluate"):
        parse_experiment_config(fam | {"cold_fusion": {"iterations": 2, "evaluate": "sometimes"}})
