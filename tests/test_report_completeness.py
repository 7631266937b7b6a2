"""Planned vs finished: plan.json, the plan rebuilt from a config, and what the report says about gaps."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from basefuse.cli.main import main
from basefuse.errors import BasefuseError
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.plan_record import read_plan, rebuild_planned_runs, write_plan
from basefuse.experiments.protocol import TaskFacts, build_plan
from basefuse.experiments.records import RunRecord
from basefuse.reports.completeness import completeness, reproduced_inputs

REPO = Path(__file__).resolve().parent.parent
PARTIAL = REPO / "docs" / "results" / "paper-h100-partial" / "raw"


def small_plan():
    cfg = parse_experiment_config({"families": {"a": ["x1", "x2", "x3"]}, "targets": ["x1"], "seeds": [0, 1],
                                   "conditions": ["pretrained", "fused"], "fused_groups": ["all"]})
    return build_plan(cfg, {t: TaskFacts(10, "f", "f") for t in ("x1", "x2", "x3")}, "base", "fp")


def test_write_and_read_plan(tmp_path):
    plan = small_plan()
    write_plan(tmp_path, plan)
    data = read_plan(tmp_path)
    # 1 target x 2 seeds x (pretrained + fused (all)) = 4 runs; jobs: 2 sources (x1's own is pruned: nothing
    # uses it), 1 fusion, 4 target finetunes
    assert len(data["runs"]) == 4
    assert [r["job_key"] for r in data["runs"]] == [r.job_key for r in plan.runs]
    assert sum(j["kind"] == "finetune" and not j["deps"] for j in data["jobs"]) == 2 + 2  # sources, pretrained runs
    assert not list(tmp_path.glob("*.tmp"))
    assert read_plan(tmp_path / "nowhere") is None


def test_a_broken_plan_is_a_clear_error(tmp_path):
    (tmp_path / "plan.json").write_text('{"runs": [{"target": "x"}]}')
    with pytest.raises(BasefuseError, match=r"runs\[0\] lacks condition, seed"):
        read_plan(tmp_path)


def test_paper_plan_rebuilt_from_the_config():
    data = rebuild_planned_runs(PARTIAL / "experiment.yaml")
    runs = data["runs"]
    # main grid: 9 targets x 5 seeds x 2 weight decays x (1 pretrained + 4 fused + 3 intertrained) = 720;
    # number of models, nested: 9 targets x k = 2..8 (8 sources left) x 1 order x all 5 seeds = 315
    assert len(runs) == 720 + 315
    count = lambda **kw: sum(all(r[k] == v for k, v in kw.items()) for r in runs)  # noqa: E731
    assert count(condition="pretrained") == 90 and count(condition="intertrained") == 270
    assert count(condition="fused", ablation="main") == 360 and count(ablation="n_models") == 315


def test_the_partial_runs_plan_is_the_one_it_ran():
    # plan.json of the partial run was rebuilt by the planner it ran with (commit 1ab9e7c): 792 runs
    # (number of models then: 9 targets x k = 1..8 x the first seed = 72), and every fusion of that plan
    # finished in that run: its store holds them all
    data = read_plan(PARTIAL)
    assert len(data["runs"]) == 720 + 72
    stored = [json.loads(line) for line in (PARTIAL / "store.jsonl").read_text().splitlines()]
    assert sum(j["kind"] == "fuse" for j in data["jobs"]) == sum(r["kind"] == "fuse" for r in stored) == 68


def test_primary_unset_keeps_the_fingerprint_of_older_configs():
    # The values the code of commit 1ab9e7c gave (before primary's default, cold_fusion, fusion lists and the
    # nested n_models keys existed): a run directory made then must be resumable without --force.
    data = {"families": {"a": ["x1", "x2", "x3"]}}
    cfg = parse_experiment_config(data)
    assert cfg.fingerprint() == "46b087b4c4e94d22"
    assert parse_experiment_config(data | {"fusion": {"method": "ties", "params": {"density": 0.5}},
                                           "n_models": {"enabled": True}}).fingerprint() == "1ba48df3c4a4e485"
    assert parse_experiment_config(data | {"primary": ["fused (all)", "pretrained"]}).fingerprint() != cfg.fingerprint()


def record(**kw) -> RunRecord:
    base = dict(target="x1", target_family="a", condition="pretrained", seed=0, accuracy=0.5, macro_f1=0.5)
    return RunRecord(**(base | kw))


def test_completeness_counts_by_condition():
    planned = [r.record_fields() for r in small_plan().runs]
    finished = [record(seed=0), record(seed=1), record(condition="fused", source_family="all", seed=0,
                                                       sources=["x2", "x3"], n_fused=2),
                record(seed=7)]  # not planned
    c = completeness(planned, finished, plan_source="plan.json")
    assert c.planned == {"pretrained": 2, "fused": 2}
    assert c.finished == {"pretrained": 2, "fused": 1}
    assert (c.n_finished, c.n_planned, c.partial, c.unplanned) == (3, 4, True, 1)


def test_inputs_produced_twice_are_named():
    rows = [{"key": "k1", "label": "source x2"}, {"key": "k2", "label": "source x2"}, {"key": "k3",
            "label": "source x3"}, {"key": "k3", "label": "source x3"},
            {"key": "t1", "label": "fused -> x1 (seed 0, wd 0)"}, {"key": "t2", "label": "fused -> x1 (seed 0, wd 0)"}]
    # a retrained source appears twice, under a new key or the same one; target runs share labels across
    # bases, so only sources and fusions count
    assert reproduced_inputs(rows) == {"source x2": 2, "source x3": 2}


def test_report_of_the_partial_run_says_partial(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", str(PARTIAL), "--out", str(tmp_path / "r"), "--exclude", "condition=intertrained",
              "--exclude", "n_fused=1"])
    assert e.value.code in (0, None)
    out = " ".join(capsys.readouterr().out.split())
    # 148 rows: 51 intertrained and 2 one-model rows excluded, the other 95 match planned runs
    assert "Partial: 95 of 792 planned runs finished." in out
    assert "│ all │ 792 │ 95 │ 697 │ 53 │" in out
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| intertrained | 270 | 0 | 270 | 51 |" in md


def test_report_without_a_plan_says_so(tmp_path):
    from test_report_build import write_run

    from basefuse.reports.build import build_report

    run = write_run(tmp_path)
    paths = build_report(run)
    assert paths.completeness is None
    assert "Plan unknown" in paths.markdown.read_text()
    write_plan(run, small_plan())  # a plan whose runs are not these: everything planned is missing
    paths = build_report(run)
    assert paths.completeness.n_planned == 4 and "Partial: 0 of 4" in paths.markdown.read_text()
    assert json.loads((run / "plan.json").read_text())["runs"][0]["condition"] == "pretrained"


def test_report_names_reproduced_inputs_and_failed_jobs(tmp_path):
    from test_report_build import write_run

    from basefuse.reports.build import build_report

    run = write_run(tmp_path)
    write_plan(run, small_plan())
    rows = [{"key": "k1", "kind": "finetune", "label": "source x2", "result": {"accuracy": 0.9}},
            {"key": "k1", "kind": "finetune", "label": "source x2", "result": {"accuracy": 0.8}}]
    (run / "store.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # The runner's format (experiments/failures.py): failed jobs, and the jobs skipped because they need one.
    (run / "failures.json").write_text(json.dumps({
        "failed": [{"key": "k9", "kind": "fuse", "label": "fuse x2+x3", "error": "out of memory\ntrace"}],
        "skipped": [{"key": "k8", "kind": "finetune", "label": "fused (all) -> x1", "because": ["k9"]}]}))
    md = build_report(run).markdown.read_text()
    assert "Input 'source x2' was produced 2 times" in md and "1 input job(s) were produced more than once" in md
    assert "Failed job: fuse x2+x3: out of memory" in md and "trace" not in md
    assert "Failed job: fused (all) -> x1: skipped (a job it needs failed)" in md


def test_bad_exclude_is_a_one_line_error_and_writes_nothing(tmp_path, capsys):
    from test_report_build import write_run

    run = write_run(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["report", str(run), "--exclude", "colour=red"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("basefuse: error: --exclude 'colour=red'") and len(err.strip().splitlines()) == 1
    assert not (run / "report").exists()


def test_primary_is_read_from_the_config(tmp_path):
    from test_report_build import CONFIG, write_run

    from basefuse.reports.build import build_report

    run = write_run(tmp_path)
    (run / "experiment.yaml").write_text(CONFIG + "primary: [fused (all), intertrained (A)]\n")
    paths = build_report(run)
    assert (paths.summary.primary_comparison.a, paths.summary.primary_comparison.b) == ("fused (all)",
                                                                                        "intertrained (A)")
    assert "C1 (confirmatory), fused (all) vs intertrained (A)" in paths.markdown.read_text()
