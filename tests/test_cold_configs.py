"""The built-in ColD Fusion configs plan what their headers say (counts worked by hand in each test)."""
from __future__ import annotations

import hashlib

import yaml

from basefuse.experiments.config import builtin_config_path, load_experiment_config
from basefuse.experiments.protocol import TaskFacts, build_plan
from basefuse.finetuning.config import FinetuneConfig


def plan_of(name: str):
    cfg = load_experiment_config(builtin_config_path(name))
    return cfg, build_plan(cfg, {n: TaskFacts(100, f"{n}-s", f"{n}-t") for n in cfg.task_refs()}, "base", "fp")


def kinds(plan) -> tuple[int, int]:
    return (sum(j.kind == "finetune" for j in plan.jobs.values()), sum(j.kind == "fuse" for j in plan.jobs.values()))


def test_gpu_config_all_nine_tasks_five_iterations():
    cfg, plan = plan_of("cold-fusion")
    assert len(cfg.task_refs()) == 9 and cfg.cold_fusion.iterations == 5
    # finetunes: 9 sources + 3 chains x 6 contributors x 4 later iterations + 9 targets x 5 seeds x (1 + 1 + 5)
    # fusions: 3 chains x 5 iterations + 9 one-shot (all 8 other tasks)
    assert kinds(plan) == (9 + 72 + 315, 15 + 9)
    for run in plan.runs:
        if run.condition == "cold":
            assert len(run.sources) == 6 and run.target_family not in {cfg.family_of(s) for s in run.sources}
    # rows: 9 targets x 5 seeds x (pretrained, fused (all), fused (other families), cold@1..5); the one-shot over
    # the chain's pool adds no job: with every contributor, it is iteration 1
    assert len(plan.runs) == 9 * 5 * 8
    key = {(r.target, r.seed, r.source_family, r.iteration): r.job_key for r in plan.runs}
    assert all(key[(t, s, "other families", None)] == key[(t, s, "other families", 1)] for t, s, *_ in key)


def test_gpu_config_plans_the_jobs_it_planned_before_chain_seeds_and_pools():
    """Chain seed 0 and the one-shot rows leave every job key as commit f52ed61 planned it: a run made then
    resumes without redoing work (the digest of its 420 sorted job keys, computed with that commit)."""
    _, plan = plan_of("cold-fusion")
    assert hashlib.sha256(" ".join(sorted(plan.jobs)).encode()).hexdigest()[:16] == "8e1e44be17cd3e2f"


def test_cpu_config_three_targets_three_iterations_three_contributors():
    cfg, plan = plan_of("cold-fusion-cpu")
    # finetunes: 9 sources + 3 chains x 3 contributors x 2 later iterations + 3 targets x 3 seeds x (pretrained,
    # fused (all), fused (other families), cold@1..3); fusions: 3 chains x 3 iterations + 3 one-shot fused (all) +
    # 3 one-shot over each chain's 6 sources (3 of 6 contribute per iteration, so iteration 1 is not one-shot)
    assert kinds(plan) == (9 + 18 + 3 * 3 * 6, 9 + 3 + 3)
    assert sorted({r.iteration for r in plan.runs if r.condition == "cold"}) == [1, 2, 3]


def test_cold_configs_state_every_hyperparameter():
    declared = set(FinetuneConfig.model_fields) - {"max_train", "eval_every"}
    for name in ("cold-fusion", "cold-fusion-cpu"):
        raw = yaml.safe_load(builtin_config_path(name).read_text())
        for section in ("finetune", "source_finetune"):
            assert declared <= set(raw[section]), (name, section, declared - set(raw[section]))
