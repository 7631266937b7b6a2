"""Existing checkpoints as an experiment's sources (issue 18, item 1): a pool of tiny finetunes with declared
`trained_on`, leakage by content, unknown provenance, and edits of a checkpoint's weights."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from basefuse.errors import BasefuseError
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.leakage import LeakageError
from basefuse.experiments.runner import make_plan, run_experiment

from builders import EXPERIMENT_HPARAMS, CountingExecutor, keyword_rows, save_base, save_finetune, write_csv

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _checkpoint(path: Path, base: Path, seed: int) -> Path:
    """A finetune of `base` as a user would hold it: a classifier folder with the base's tokenizer."""
    save_finetune(path, base, num_labels=2, seed=seed)
    for f in TOKENIZER_FILES:
        if (base / f).exists():
            shutil.copy(base / f, path / f)
    return path


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    base = save_base(root / "base")
    data = root / "data"
    data.mkdir()
    tasks = {name: write_csv(data / f"{name}.csv", keyword_rows(160, seed=s))
             for s, name in enumerate(["a1", "a2", "a3", "t1"], start=1)}
    cks = {f"ck{i}": _checkpoint(root / f"ck{i}", base, seed=i) for i in (1, 2, 3)}
    return root, base, tasks, cks


def _config(pool, **over) -> dict:
    root, base, tasks, cks = pool
    members = [{"name": f"ck{i}", "model": str(cks[f"ck{i}"]),
                "trained_on": [{"name": f"a{i}", "spec": str(tasks[f"a{i}"])}]} for i in (1, 2, 3)]
    cfg = {"name": "pool", "base_model": str(base), "families": {"pool": members},
           "held_out": {"targets": [{"name": "t1", "spec": str(tasks["t1"])}]},
           "conditions": ["pretrained", "fused", "intertrained"], "fused_groups": ["all"], "family_bases": "every",
           "intertrained": "each", "seeds": [0], "finetune": EXPERIMENT_HPARAMS,
           "leakage": {"max_test_overlap": 0.2, "max_near_duplicate_overlap": 0.5}}
    return cfg | over


def test_a_pool_runs_end_to_end_and_fuses_the_checkpoints_themselves(pool, tmp_path):
    cfg = parse_experiment_config(_config(pool))
    plan = make_plan(cfg)
    kinds = sorted(j.kind for j in plan.jobs.values())
    # 3 checkpoints, 1 fusion of them, 1 target finetune each from pretrained, fused and every single checkpoint
    assert kinds == ["checkpoint"] * 3 + ["finetune"] * 5 + ["fuse"]
    fuse = next(j for j in plan.jobs.values() if j.kind == "fuse")
    root, base, tasks, cks = pool
    assert sorted(s["base"] for s in fuse.params["sources"]) == sorted(str(p.resolve()) for p in cks.values())
    summary = run_experiment(cfg, tmp_path / "run", progress=False)
    assert summary.failures is None or not summary.failures.failed
    rows = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    fused = [r for r in rows if r["condition"] == "fused"]
    assert len(fused) == 1 and fused[0]["sources"] == ["ck1", "ck2", "ck3"] and fused[0]["n_fused"] == 3
    assert sorted(r["sources"][0] for r in rows if r["condition"] == "intertrained") == ["ck1", "ck2", "ck3"]
    assert all("provenance" not in r for r in rows)  # every checkpoint declared what it was trained on
    table = json.loads((tmp_path / "run" / "leakage.json").read_text())
    fused_row = next(r for r in table["rows"] if r["base"] == "fused (all)")
    assert fused_row["provenance"] == ["a1", "a2", "a3"]  # the declared tasks, checked by content


def test_a_checkpoint_declared_on_the_target_by_name_is_left_out_of_its_pool(pool):
    cfg = _config(pool)
    cfg["families"]["pool"][0]["trained_on"].append("t1")
    plan = make_plan(parse_experiment_config(cfg))
    fused = next(r for r in plan.runs if r.condition == "fused")
    assert fused.sources == ("ck2", "ck3")


@pytest.mark.parametrize("how", ["renamed", "shuffled"])
def test_a_checkpoint_trained_on_the_targets_data_under_another_name_is_refused(pool, tmp_path, how):
    root, base, tasks, cks = pool
    rows = list(json.loads(json.dumps(_csv_rows(tasks["t1"]))))
    if how == "shuffled":
        random.Random(0).shuffle(rows)
    copy = write_csv(tmp_path / "copy.csv", rows)
    cfg = _config(pool)
    cfg["families"]["pool"][1]["trained_on"] = [{"name": "my_data", "spec": str(copy)}]
    with pytest.raises(LeakageError, match="checkpoint 'ck2' was trained on 'my_data', which holds the data of "
                                           "target 't1'"):
        make_plan(parse_experiment_config(cfg))


def _csv_rows(path: Path) -> list[tuple[str, str]]:
    import csv

    with open(path, encoding="utf-8") as f:
        return [tuple(r) for r in list(csv.reader(f))[1:]]


def test_unknown_provenance_is_refused_then_allowed_and_labelled(pool, tmp_path):
    cfg = _config(pool)
    cfg["families"]["pool"][2]["trained_on"] = "unknown"
    with pytest.raises(BasefuseError, match="checkpoint 'ck3': trained_on is unknown.*leakage.allow_unknown: true"):
        parse_experiment_config(cfg)
    cfg["leakage"] = cfg["leakage"] | {"allow_unknown": True}
    parsed = parse_experiment_config(cfg)
    plan = make_plan(parsed)
    marked = {r.condition + ":" + "+".join(r.sources): r.provenance for r in plan.runs}
    assert marked == {"pretrained:": None, "fused:ck1+ck2+ck3": "unknown", "intertrained:ck1": None,
                      "intertrained:ck2": None, "intertrained:ck3": "unknown"}
    unknown = sorted((r["base"], r["provenance"], r.get("provenance_unknown")) for r in plan.leakage["rows"])
    assert unknown == [("fused (all)", ["a1", "a2"], ["ck3"]), ("intertrained (pool)", [], ["ck3"]),
                       ("intertrained (pool)", ["a1"], None), ("intertrained (pool)", ["a2"], None)]
    run_experiment(parsed, tmp_path / "run", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert sorted((r["condition"], str(r.get("provenance"))) for r in rows) == [
        ("fused", "unknown"), ("intertrained", "None"), ("intertrained", "None"), ("intertrained", "unknown"),
        ("pretrained", "None")]
    assert json.loads((tmp_path / "run" / "leakage.json").read_text())["rows"] == plan.leakage["rows"]
    from basefuse.cli.experiment_cmd import build_run_report
    from basefuse.reports.load import read_results

    build_run_report(tmp_path / "run", read_results(tmp_path / "run" / "results.jsonl")[0], parsed.conditions)
    md = (tmp_path / "run" / "report" / "report.md").read_text()
    assert ("Provenance unknown: 2 (target, base) pairs use pool checkpoint(s) ck3, whose training data was not "
            "declared") in md
    assert "| t1 | fused (all) | 16 | 0 | 0.00% | provenance unknown: ck3 |" in md


def test_editing_a_checkpoint_reruns_its_dependents_and_nothing_else(pool, tmp_path):
    root, base, tasks, cks = pool
    edited = _checkpoint(tmp_path / "ck1", base, seed=1)
    cfg = _config(pool)
    cfg["families"]["pool"][0]["model"] = str(edited)
    parsed = parse_experiment_config(cfg)
    before = make_plan(parsed)
    run_experiment(parsed, tmp_path / "run", progress=False)
    _checkpoint(edited, base, seed=99)  # new weights in the same folder
    after = make_plan(parsed)
    changed = set(after.jobs) - set(before.jobs)
    labels = sorted(after.jobs[k].label for k in changed)
    assert labels == ["checkpoint ck1", "fuse ck1+ck2+ck3", "fused -> t1 (seed 0, wd 0)",
                      "intertrained -> t1 (seed 0, wd 0)"]
    inter = next(k for k in changed if after.jobs[k].label.startswith("intertrained"))
    assert after.jobs[inter].params["model"]["base"] == str(edited.resolve())  # the one from ck1, not another
    again = CountingExecutor()
    run_experiment(parsed, tmp_path / "run", executor=again, progress=False)
    assert set(again.keys) == changed  # and nothing else


def test_a_checkpoint_edited_after_planning_fails_its_job(pool, tmp_path):
    from basefuse.experiments.jobs import execute_job

    root, base, tasks, cks = pool
    edited = _checkpoint(tmp_path / "ck", base, seed=1)
    cfg = _config(pool)
    cfg["families"]["pool"][0]["model"] = str(edited)
    plan = make_plan(parse_experiment_config(cfg))
    job = next(j for j in plan.jobs.values() if j.kind == "checkpoint" and j.params["name"] == "ck1")
    _checkpoint(edited, base, seed=7)
    with pytest.raises(BasefuseError, match="checkpoint 'ck1'.*weights changed after the run was planned"):
        execute_job(job.to_dict(), str(tmp_path / "run"))


def test_a_checkpoint_of_another_model_is_refused_unless_allowed(pool, tmp_path):
    root, base, tasks, cks = pool
    # another "pretraining" of the same shape (weights of a wider initialisation: far from the base's)
    other = save_base(tmp_path / "other", seed=5, initializer_range=0.5)
    stranger = _checkpoint(tmp_path / "stranger", other, seed=1)
    cfg = _config(pool)
    cfg["families"]["pool"][1]["model"] = str(stranger)
    with pytest.raises(BasefuseError, match="checkpoint 'ck2'.*relative distance.*allow_unrelated: true"):
        make_plan(parse_experiment_config(cfg))
    cfg["families"]["pool"][1]["allow_unrelated"] = True
    make_plan(parse_experiment_config(cfg))


def test_pool_config_errors_name_the_checkpoint(pool):
    cfg = _config(pool)
    cfg["families"]["pool"][0]["trained_on"] = []
    with pytest.raises(BasefuseError, match="families.pool.0.checkpoint.trained_on: lists no task"):
        parse_experiment_config(cfg)
    cfg = _config(pool, targets=["ck1"])
    with pytest.raises(BasefuseError, match="target 'ck1' is a checkpoint"):
        parse_experiment_config(cfg)
    cfg = _config(pool, cold_fusion={"iterations": 1})
    with pytest.raises(BasefuseError, match="cold_fusion.*existing checkpoint"):
        parse_experiment_config(cfg)


# ---- found in review -------------------------------------------------------------------------------------------

def test_a_probe_is_one_row_per_cell_whatever_the_weight_decays(pool):
    cfg = _config(pool, evaluation="both", weight_decays=[0.0, 0.1])
    plan = make_plan(parse_experiment_config(cfg))
    probes = [r for r in plan.runs if r.evaluation == "linear_probe"]
    finetunes = [r for r in plan.runs if r.evaluation is None]
    # 5 bases (pretrained, fused, 3 intertrained) x 1 seed: finetuned at both weight decays, probed once
    assert len(finetunes) == 10 and len(probes) == 5 and {r.weight_decay for r in probes} == {0.0}


def test_n_models_leaves_out_a_checkpoint_declared_on_the_target(pool):
    cfg = _config(pool)
    cfg["families"]["pool"][0]["trained_on"].append("t1")
    cfg["n_models"] = {"enabled": True, "min_k": 2}
    plan = make_plan(parse_experiment_config(cfg))  # no false leakage error
    subsets = {r.sources for r in plan.runs if r.ablation == "n_models"}
    assert subsets == {("ck2", "ck3")}


def test_a_fusion_named_greedy_is_refused_beside_selection(pool):
    root, base, tasks, cks = pool
    cfg = _config(pool, fusion=[{"method": "average"}, {"method": "ties", "name": "greedy"}],
                  selection={"probe": ["a1"]})
    cfg["held_out"]["targets"].append({"name": "a1", "spec": str(tasks["a1"])})
    with pytest.raises(BasefuseError, match="named 'greedy' would share its label"):
        parse_experiment_config(cfg)


def test_a_target_without_selection_candidates_is_refused_before_the_run_dir_is_written(pool, tmp_path):
    root, base, tasks, cks = pool
    cfg = _config(pool)
    cfg["held_out"]["targets"].append({"name": "a1", "spec": str(tasks["a1"])})
    for member in cfg["families"]["pool"]:
        member["trained_on"] = [{"name": "a1", "spec": str(tasks["a1"])}]
    cfg["families"]["pool"][2]["trained_on"] = ["t1"]
    cfg["selection"] = {"probe": ["a1"]}
    with pytest.raises(BasefuseError, match="selection: target 't1' has no candidate left"):
        run_experiment(parse_experiment_config(cfg), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_edited_after_its_job_ran_fails_the_jobs_that_read_it(pool, tmp_path):
    from basefuse.experiments.jobs import execute_job

    root, base, tasks, cks = pool
    edited = _checkpoint(tmp_path / "ck", base, seed=1)
    cfg = _config(pool)
    cfg["families"]["pool"][0]["model"] = str(edited)
    plan = make_plan(parse_experiment_config(cfg))
    for job in (j for j in plan.jobs.values() if j.kind == "checkpoint"):
        execute_job(job.to_dict(), str(tmp_path / "run"))
    _checkpoint(edited, base, seed=7)  # edited after its checkpoint job was done, before the fusion reads it
    fuse = next(j for j in plan.jobs.values() if j.kind == "fuse")
    with pytest.raises(BasefuseError, match="weights changed after the run was planned"):
        execute_job(fuse.to_dict(), str(tmp_path / "run"))


# ---- data-aware fusion of a pool (issue 20) ---------------------------------------------------------------------

@pytest.mark.parametrize("method", ["fisher", "regmean"])
def test_a_data_aware_fusion_of_checkpoints_reads_each_ones_declared_task(pool, method):
    """Each checkpoint's statistics are estimated on the one task it declares in `trained_on`, with that entry's
    own spec (not another checkpoint's, not the target's)."""
    root, base, tasks, cks = pool
    cfg = _config(pool, fusion=[{"method": "average"}, {"method": method, "params": {"n": 8}}])
    plan = make_plan(parse_experiment_config(cfg))
    fuse = next(j for j in plan.jobs.values() if j.kind == "fuse" and j.params["method"] == method)
    by_source = {Path(s["base"]).name: d["spec"] for s, d in zip(fuse.params["sources"], fuse.params["data"])}
    assert by_source == {f"ck{i}": str(tasks[f"a{i}"]) for i in (1, 2, 3)}
    average = next(j for j in plan.jobs.values() if j.kind == "fuse" and j.params["method"] == "average")
    assert "data" not in average.params  # a data-free method's key is as before


@pytest.mark.parametrize("two", [True, False])
def test_a_data_aware_fusion_refuses_a_checkpoint_without_exactly_one_task(pool, two):
    root, base, tasks, cks = pool
    trained_on = [{"name": "a1", "spec": str(tasks["a1"])}, {"name": "a2", "spec": str(tasks["a2"])}] if two \
        else "unknown"
    cfg = _config(pool, fusion=[{"method": "fisher"}], leakage={"allow_unknown": True, "max_test_overlap": 0.2,
                                                                  "max_near_duplicate_overlap": 0.5})
    cfg["families"]["pool"][0]["trained_on"] = trained_on
    with pytest.raises(BasefuseError, match="source ck1: a pool checkpoint without exactly one task in `trained_on`"):
        make_plan(parse_experiment_config(cfg))
