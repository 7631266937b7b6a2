"""A crash after a job wrote its output but before the store recorded it: the next run recovers the
result from the output folder and does not run the job again."""
from __future__ import annotations

import json

import pytest

from basefuse.executors import Resources
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.runner import run_experiment

from builders import make_tiny_experiment

FAST = {"learning_rate": 3e-3, "batch_size": 16, "max_epochs": 1, "max_length": 16, "eval_every": 5, "patience": 1,
        "min_steps": 0}


class DiesAfterOutput:
    """Runs the first job to the end (its output folder is complete), then dies before handing back its result."""

    workers = 1

    def submit(self, fn, job):
        self.job = (fn, job)
        return 0

    def wait(self):
        fn, job = self.job
        fn(job, Resources(threads=1))
        raise KeyboardInterrupt("killed between the job's output and the store")


class Recording:
    """Records which jobs it is asked to run and answers a made-up result without running them (cheap)."""

    workers = 1

    def __init__(self) -> None:
        self.executed: list[str] = []

    def submit(self, fn, job):
        self.executed.append(job["key"])
        return job["key"]

    def wait(self):
        return [(self.executed[-1], {"ok": True, "result": {"accuracy": 0.5, "macro_f1": 0.5, "wall_s": 0.0}})]


def test_finished_but_unrecorded_job_is_recovered_not_rerun(tmp_path):
    data = make_tiny_experiment(tmp_path, conditions=["pretrained"], seeds=[0, 1], finetune=FAST, source_finetune=FAST)
    cfg = parse_experiment_config(data)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, run_dir, executor=DiesAfterOutput(), progress=False)
    store = run_dir / "store.jsonl"
    assert not store.exists() or store.read_text().strip() == ""   # the crash came before the store append
    (job_dir,) = (run_dir / "jobs").iterdir()
    metrics = json.loads((job_dir / "metrics.json").read_text())

    again = Recording()
    summary = run_experiment(cfg, run_dir, executor=again, progress=False)
    assert again.executed and job_dir.name not in again.executed   # the others ran, the finished one did not
    assert summary.jobs_reused == 1 and summary.jobs_executed == len(again.executed)
    rows = {r["key"]: r for r in map(json.loads, store.read_text().splitlines())}
    assert rows[job_dir.name]["result"]["recovered"] is True
    assert rows[job_dir.name]["result"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
