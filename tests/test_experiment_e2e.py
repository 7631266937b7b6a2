"""End to end on a tiny random BERT and tiny tasks: run, resume after a crash, refuse mixed run dirs."""
from __future__ import annotations

import json
import sys

import pytest
import yaml

from basefuse.errors import BasefuseError
from basefuse.executors import LocalExecutor
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.runner import make_plan, run_experiment

from builders import CountingExecutor as Counting, make_tiny_experiment


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-exp")
    return root, make_tiny_experiment(root)


class CrashAfter(LocalExecutor):
    """Runs jobs in-process, then dies like a killed process after `n` of them."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.executed = 0

    def wait(self):
        if self.executed == self.n:
            raise KeyboardInterrupt("simulated crash")
        self.executed += 1
        return super().wait()


@pytest.mark.slow
def test_run_resume_and_report(tiny):
    root, data = tiny
    cfg = parse_experiment_config(data)
    run_dir = root / "run"
    plan = make_plan(cfg)
    n_jobs = len(plan.jobs)

    crash = CrashAfter(8)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, run_dir, executor=crash, progress=False)
    assert crash.executed == 8
    store_lines = (run_dir / "store.jsonl").read_text().splitlines()
    assert len(store_lines) == 8

    # A crash mid-write leaves half a line: the next run must cope.
    with open(run_dir / "store.jsonl", "a") as f:
        f.write('{"key": "half')

    again = Counting()
    summary = run_experiment(cfg, run_dir, executor=again, progress=False)
    assert again.executed == n_jobs - 8
    assert summary.jobs_reused == 8 and summary.jobs_executed == n_jobs - 8

    # Everything done: a third run executes nothing.
    third = Counting()
    summary = run_experiment(cfg, run_dir, executor=third, progress=False)
    assert third.executed == 0 and summary.jobs_reused == n_jobs

    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(records) == len(plan.runs)
    assert {r["condition"] for r in records} == {"pretrained", "fused", "intertrained"}
    for r in records:
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["target"] not in r["sources"]
    # the fused base really is a fusion of the other sources, saved in HF format
    fused = next(r for r in records if r["condition"] == "fused" and r["source_family"] == "all")
    assert fused["n_fused"] == 5
    from basefuse.cli.experiment_cmd import build_run_report

    assert not (run_dir / "report").exists()  # the runner builds no report: the command that ran it does
    assert build_run_report(run_dir, summary.records, cfg.conditions) == run_dir / "report" / "report.html"
    assert (run_dir / "report" / "report.html").exists()
    assert (run_dir / "experiment.yaml").exists()


@pytest.mark.slow
def test_run_dir_of_another_config_is_refused(tiny, tmp_path):
    root, data = tiny
    run_dir = tmp_path / "run"
    small = data | {"seeds": [0], "conditions": ["pretrained"], "targets": ["x1"]}
    run_experiment(parse_experiment_config(small), run_dir, progress=False)
    other = small | {"seeds": [1]}
    with pytest.raises(BasefuseError, match="different config"):
        run_experiment(parse_experiment_config(other), run_dir, progress=False)
    summary = run_experiment(parse_experiment_config(other), run_dir, progress=False, force=True)
    assert summary.jobs_executed == 1


def test_cli_experiment_bad_config_exit_2(tmp_path):
    import subprocess

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({"families": {"a": ["x", "y"]}, "seedz": [1]}))
    p = subprocess.run([sys.executable, "-m", "basefuse", "experiment", str(cfg), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "unknown key 'seedz'" in p.stderr and p.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_hub_base_is_pinned_to_the_fetched_snapshot(tiny, tmp_path, monkeypatch):
    """A hub-id base is fetched once at planning time; jobs use that snapshot and its weights' fingerprint."""
    import shutil

    import huggingface_hub

    root, data = tiny
    snap = tmp_path / "hub" / "snapshots" / "0123abc"
    shutil.copytree(data["base_model"], snap)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: str(snap))
    cfg = parse_experiment_config(data | {"base_model": "some-org/tiny-bert"})
    plan = make_plan(cfg)
    local = make_plan(parse_experiment_config(data))
    from_snapshot = [j for j in plan.jobs.values()
                     if isinstance(j.params.get("model"), dict) and j.params["model"].get("base") == str(snap)]
    assert from_snapshot and all(j.params["model"]["fingerprint"].startswith("sha256:") for j in from_snapshot)
    # same weights as the local base: the same job keys, so nothing is recomputed for a moved model
    assert set(plan.jobs) == set(local.jobs)


def test_hub_base_offline_fails_before_any_job(tiny, monkeypatch):
    import huggingface_hub

    def offline(repo_id, **kw):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    root, data = tiny
    with pytest.raises(BasefuseError, match="some-org/tiny-bert.*hub"):
        make_plan(parse_experiment_config(data | {"base_model": "some-org/tiny-bert"}))


@pytest.mark.slow
def test_resume_with_only_the_store_and_metrics_carried(tiny, tmp_path):
    """A run moved to a fresh machine with only store.jsonl, run.json and the small metrics files (no
    models, as from one GPU call to the next): sources and fusions are redone, finished target runs are not."""
    import shutil

    root, data = tiny
    cfg = parse_experiment_config(data)
    plan = make_plan(cfg)
    first = tmp_path / "first"
    crash = CrashAfter(len(plan.source_jobs()) + len(plan.fuse_jobs()) + 5)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, first, executor=crash, progress=False)

    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("store.jsonl", "run.json", "experiment.yaml"):
        shutil.copy(first / name, moved / name)
    for metrics in (first / "jobs").glob("*/metrics.json"):
        (moved / "jobs" / metrics.parent.name).mkdir(parents=True)
        shutil.copy(metrics, moved / "jobs" / metrics.parent.name / "metrics.json")

    again = Counting()
    summary = run_experiment(cfg, moved, executor=again, progress=False)
    n_jobs = len(plan.jobs)
    assert summary.jobs_reused == 5 and again.executed == n_jobs - 5
    assert len(summary.records) == len(plan.runs)
