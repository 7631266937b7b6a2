"""A tiny ColD Fusion experiment with `chain_seeds: [0, 1]` and `evaluate: both` (the seen setting beside the unseen
one) on the tiny random BERT and three keyword tasks: planned (fast) and run end to end with its report (slow).
Counts are worked by hand in the comments."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.runner import make_plan, run_experiment
from basefuse.reports.build import build_report

from builders import cold_beside_sections, make_tiny_experiment

HPARAMS = {"learning_rate": 3e-3, "batch_size": 16, "max_epochs": 1, "max_length": 16, "eval_every": 2,
           "patience": 1, "min_steps": 0, "max_eval": 16, "max_test": 24}


def tiny_cold_config(root) -> dict:
    """x1 is the target; family x holds only x1, family y holds y1 and y2. Unseen chain: over y1, y2. Seen chain:
    over x1, y1, y2. Two iterations, every contributor in each, two chain seeds, one target seed."""
    data = make_tiny_experiment(root)
    keep = {"x": ["x1"], "y": ["y1", "y2"]}
    families = {f: [t for t in tasks if t["name"] in keep[f]] for f, tasks in data["families"].items()}
    return data | {"families": families, "targets": ["x1"], "seeds": [0], "conditions": ["pretrained"],
                   "source_finetune": HPARAMS, "finetune": HPARAMS,
                   "budgets": {"max_train_source": 32, "max_train_target": 32},
                   "cold_fusion": {"iterations": 2, "chain_seeds": [0, 1], "evaluate": "both"}}


@pytest.fixture(scope="module")
def tiny_cold(tmp_path_factory):
    root = tmp_path_factory.mktemp("cold-tiny")
    cfg = parse_experiment_config(tiny_cold_config(root))
    return root, cfg, make_plan(cfg)


def test_tiny_cold_plan_counts_and_leakage(tiny_cold):
    _, _, plan = tiny_cold
    kinds = Counter(j.kind for j in plan.jobs.values())
    # per chain seed: unseen y1, y2 (2 iteration-1 finetunes from the base, 2 iteration-2 contributors, 2 fusions);
    # seen x1, y1, y2 (1 more iteration-1 finetune, x1; 3 iteration-2 contributors; 2 fusions); target finetunes:
    # pretrained + per chain seed and setting cold@1 (= the one-shot over its pool) and cold@2
    assert kinds == {"finetune": 2 * (2 + 2 + 1 + 3) + 1 + 2 * 2 * 2, "fuse": 2 * (2 + 2)}
    assert len(plan.runs) == 1 + 2 * 2 * 3
    rows = Counter((r.condition, r.source_family, r.iteration) for r in plan.runs)
    assert rows == {("pretrained", None, None): 1, **{(c, f, i): 2 for f in ("other families", "seen")
                                                       for c, i in (("fused", None), ("cold", 1), ("cold", 2))}}
    # the seen bases have trained on x1's train split, and the overlap check counted x1's own rows too
    seen = [r for r in plan.leakage["rows"] if r["base"].endswith("(seen)")]
    assert seen and all("x1" in r["provenance"] for r in seen)
    assert all("x1" not in r["provenance"] for r in plan.leakage["rows"] if "(other families)" in r["base"])
    assert all(r["fraction"] <= plan.leakage["max_test_overlap"] for r in plan.leakage["rows"])


@pytest.mark.slow
def test_tiny_cold_runs_and_reports_each_iteration_beside_one_shot_seen_and_unseen_apart(tiny_cold):
    root, cfg, plan = tiny_cold
    run_dir = root / "run"
    summary = run_experiment(cfg, run_dir, progress=False)
    assert summary.jobs_executed == len(plan.jobs) == 25 + 8
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(records) == 13
    assert {(r["source_family"], r.get("chain_seed")) for r in records if r["condition"] != "pretrained"} == {
        (f, c) for f in ("other families", "seen") for c in (0, 1)}
    # iteration 1 is the one-shot fusion over the same pool: one job, one accuracy
    acc = {(r["condition"], r["source_family"], r.get("iteration"), r.get("chain_seed")): r["accuracy"]
           for r in records}
    for fam in ("other families", "seen"):
        for c in (0, 1):
            assert acc[("fused", fam, None, c)] == acc[("cold", fam, 1, c)]

    md = build_report(run_dir).markdown.read_text()
    unseen, seen = cold_beside_sections(md)
    for pool, start in (("other families (target's family left out)", unseen),
                        ("all sources, target's train split included", seen)):
        table = md[start:].split("\n\n")[1]
        assert [line.split(" | ")[:2] for line in table.splitlines()[2:]] == [["| 1", pool], ["| 2", pool]]
        assert table.count("1 target, 1 seed, 2 chain seeds") == 2
        assert "| 1 | " + pool + " | " in table and " | +0.00 | " in table.splitlines()[2]  # iteration 1 = one-shot
    assert "Chain seeds: 0, 1" in md
    assert "| cold@2 (seen) |" in md


def test_tiny_cold_plan_with_seen_alone(tiny_cold):
    root, _, _ = tiny_cold
    data = tiny_cold_config(root / "seen-only")
    data["cold_fusion"] |= {"evaluate": "seen"}
    plan = make_plan(parse_experiment_config(data))
    # per chain seed: x1, y1, y2 finetuned from the base, 3 iteration-2 contributors, 2 fusions; target finetunes:
    # pretrained + per chain seed cold@1 (= fused (seen)) and cold@2
    assert Counter(j.kind for j in plan.jobs.values()) == {"finetune": 2 * (3 + 3) + 1 + 2 * 2, "fuse": 2 * 2}
    assert {r.source_family for r in plan.runs} == {None, "seen"}
    assert sorted(r.chain_seed for r in plan.runs if r.iteration == 2) == [0, 1]
