"""A target is never finetuned from a base that contains its own task, also not through a fusion.

Behavioural: the plan is built by `build_plan`; a planning step that slips the target into a fused
pool (simulated by wrapping the pool builder) must make planning fail, whatever the guard looks like.
"""
from __future__ import annotations

import shutil

import pytest

from basefuse.errors import BasefuseError
from basefuse.experiments import protocol
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.protocol import TaskFacts, build_plan

FAMILIES = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"]}
LEAK = (BasefuseError, AssertionError)  # the guard may report either; what matters is that planning stops


def facts():
    return {n: TaskFacts(train_size=100 + i, fingerprint_source=f"{n}-src", fingerprint_target=f"{n}-tgt")
            for i, n in enumerate(sum(FAMILIES.values(), []))}


def config(**over):
    return parse_experiment_config({"families": FAMILIES, "seeds": [0], "targets": ["a1"]} | over)


def test_a_correct_plan_passes():
    plan = build_plan(config(), facts(), "base", "fp")
    assert any(r.condition == "fused" for r in plan.runs)


@pytest.mark.parametrize("group", ["all", "b"])
def test_target_inside_a_fused_pool_is_refused(monkeypatch, group):
    real = protocol._source_groups

    def leaky(cfg, target):
        """The pool of `group` also holds the target's own task: a leak through a fusion only."""
        return [(g, sorted(set(pool) | {target}) if g == group else pool) for g, pool in real(cfg, target)]

    monkeypatch.setattr(protocol, "_source_groups", leaky)
    # intertrained off: the leaky pool may then reach a target's base only through a fusion
    with pytest.raises(LEAK):
        build_plan(config(conditions=["pretrained", "fused"]), facts(), "base", "fp")


def test_the_targets_data_under_another_name_is_refused(tmp_path, monkeypatch):
    """The target's CSV copied to another path and listed as a source of the other family."""
    from builders import make_tiny_experiment
    from basefuse.experiments.runner import make_plan

    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    data = make_tiny_experiment(tmp_path)
    twin = shutil.copy(tmp_path / "data" / "x1.csv", tmp_path / "data" / "twin.csv")
    data["families"]["y"][0] = {"name": "twin", "spec": str(twin)}
    with pytest.raises(LEAK):
        make_plan(parse_experiment_config(data))
