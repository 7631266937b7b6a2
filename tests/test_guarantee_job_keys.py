"""A job's key changes with everything that decides its output, so a resumed run never reuses stale work.

Plans are built through the public planning entry point (`make_plan`: it loads the task files and
fingerprints the base), from configs that differ in one thing each.
"""
from __future__ import annotations

import csv
import shutil

import pytest
from safetensors.torch import load_file, save_file

from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.runner import make_plan

from builders import make_tiny_experiment


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    data = make_tiny_experiment(root)
    return root, data, make_plan(parse_experiment_config(data))


def plans_before_and_after_editing(data: dict, task: str, folder) -> tuple:
    """Plans of the same config before and after one row of `task`'s CSV is edited in place (same path,
    as a user fixing a label and resuming would)."""
    folder.mkdir()
    families = {fam: [t | {"spec": shutil.copy(t["spec"], folder)} for t in tasks]
                for fam, tasks in data["families"].items()}
    cfg = parse_experiment_config(data | {"families": families})
    before = make_plan(cfg)
    path = next(t["spec"] for tasks in families.values() for t in tasks if t["name"] == task)
    rows = list(csv.reader(open(path, newline="", encoding="utf-8")))
    rows[-1][1] = "yes" if rows[-1][1] == "no" else "no"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return before, make_plan(cfg)


def target_keys(plan, target: str, condition: str | None = None) -> set[str]:
    return {r.job_key for r in plan.runs if r.target == target and condition in (None, r.condition)}


def uses_source(plan, job_key: str, source_key: str) -> bool:
    deps = set(plan.target_jobs()[job_key].deps)
    return source_key in deps or any(source_key in plan.fuse_jobs()[d].deps for d in deps if d in plan.fuse_jobs())


def test_same_config_same_keys(exp):
    _, data, plan = exp
    again = make_plan(parse_experiment_config(data))
    assert set(again.jobs) == set(plan.jobs)


def test_a_source_task_with_one_row_changed_gets_new_source_fusion_and_target_keys(exp, tmp_path):
    _, data, _ = exp
    plan, changed = plans_before_and_after_editing(data, "y2", tmp_path / "data")
    assert changed.source_jobs()["y2"].key != plan.source_jobs()["y2"].key
    for name in ("x2", "x3", "y1", "y3"):  # the other sources are the same work
        assert changed.source_jobs()[name].key == plan.source_jobs()[name].key
    old_y2 = plan.source_jobs()["y2"].key
    built_on_y2 = {k for k in plan.target_jobs() if uses_source(plan, k, old_y2)}
    assert built_on_y2 and built_on_y2.isdisjoint(changed.target_jobs())
    assert set(plan.target_jobs()) - built_on_y2 <= set(changed.target_jobs())  # pretrained runs etc. are reused
    y2_fusions = {k for k, j in plan.fuse_jobs().items() if old_y2 in j.deps}
    assert y2_fusions and y2_fusions.isdisjoint(changed.fuse_jobs())


def test_the_target_task_with_one_row_changed_gets_new_target_keys(exp, tmp_path):
    _, data, _ = exp
    plan, changed = plans_before_and_after_editing(data, "x1", tmp_path / "data")
    for condition in ("pretrained", "fused", "intertrained"):  # every base condition finetuned on x1
        old = target_keys(plan, "x1", condition)
        assert old and old.isdisjoint(target_keys(changed, "x1", condition)), condition


@pytest.mark.parametrize("change, stages", [
    ({"finetune": {"learning_rate": 1e-3}}, {"target"}),
    ({"source_finetune": {"learning_rate": 1e-3}}, {"source", "fuse", "target-built"}),
    ({"source_seed": 1}, {"source", "fuse", "target-built"}),
    ({"fusion": {"method": "task-arithmetic", "params": {"lam": 0.5}}}, {"fuse", "target-fused"}),
    ({"weight_decays": [0.01]}, {"target"}),
])
def test_keys_follow_what_decides_the_output(exp, change, stages):
    _, data, plan = exp
    other = make_plan(parse_experiment_config(data | change))
    src_same = {n: plan.source_jobs()[n].key == other.source_jobs()[n].key for n in plan.source_jobs()}
    assert (not any(src_same.values())) == ("source" in stages)
    assert set(plan.fuse_jobs()).isdisjoint(other.fuse_jobs()) == ("fuse" in stages)
    changed_targets = {k for k in plan.target_jobs() if k not in other.target_jobs()}
    fused = target_keys(plan, "x1", "fused")
    built = fused | target_keys(plan, "x1", "intertrained")
    want = (set(plan.target_jobs()) if "target" in stages else built if "target-built" in stages
            else fused if "target-fused" in stages else set())
    assert changed_targets == want


def test_fusion_params_alone_change_the_fusion_keys(exp):
    _, data, _ = exp
    a = make_plan(parse_experiment_config(data | {"fusion": {"method": "task-arithmetic", "params": {"lam": 0.3}}}))
    b = make_plan(parse_experiment_config(data | {"fusion": {"method": "task-arithmetic", "params": {"lam": 0.5}}}))
    assert a.fuse_jobs() and set(a.fuse_jobs()).isdisjoint(b.fuse_jobs())
    assert target_keys(a, "x1", "fused").isdisjoint(target_keys(b, "x1", "fused"))
    assert target_keys(a, "x1", "pretrained") == target_keys(b, "x1", "pretrained")


def test_a_new_seed_is_a_new_job_and_old_seeds_are_kept(exp):
    _, data, plan = exp
    other = make_plan(parse_experiment_config(data | {"seeds": [0, 2]}))
    seed_keys = lambda p, s: {r.job_key for r in p.runs if r.seed == s}  # noqa: E731
    assert seed_keys(plan, 0) == seed_keys(other, 0)
    assert seed_keys(other, 2).isdisjoint(plan.target_jobs())


def test_base_weights_changed_by_one_value_change_every_key(exp, tmp_path):
    _, data, plan = exp
    base = tmp_path / "base"
    shutil.copytree(data["base_model"], base)
    tensors = load_file(str(base / "model.safetensors"))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1.0
    save_file(tensors, str(base / "model.safetensors"), metadata={"format": "pt"})
    other = make_plan(parse_experiment_config(data | {"base_model": str(base)}))
    assert set(plan.jobs).isdisjoint(other.jobs)
