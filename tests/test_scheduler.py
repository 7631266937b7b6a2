"""The runner's schedule: a job starts as soon as the jobs it needs are done (no barrier per depth), at most
`workers` run at once, a failed job's dependents are skipped while the others go on, results.jsonl is what
the plan and the store say, and the runner never closes an executor it was given.

The executor here runs nothing: each job "takes" a set time on a virtual clock and writes the file that
marks its output complete, so the schedule is exact and the tests take milliseconds.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from basefuse.experiments.jobs import make_job
from basefuse.experiments.protocol import Plan, PlannedRun
from basefuse.experiments.runner import run_jobs


class VirtualClock:
    """Each job ends `durations[label]` (default 1) after it starts; `wait` jumps to the next end."""

    def __init__(self, run_dir: Path, workers: int, durations: dict[str, float] | None = None,
                 fail: tuple[str, ...] = (), crash_after: int | None = None) -> None:
        self.run_dir, self.workers = run_dir, workers
        self.durations, self.fail, self.crash_after = durations or {}, fail, crash_after
        self.now = 0.0
        self.running: dict[str, tuple[float, dict]] = {}
        self.start: dict[str, float] = {}
        self.end: dict[str, float] = {}
        self.order: list[str] = []
        self.max_in_flight = 0
        self.closed = False

    def submit(self, fn, job):
        assert job["label"] not in self.start, f"{job['label']} submitted twice"
        self.start[job["label"]] = self.now
        self.order.append(job["label"])
        self.running[job["key"]] = (self.now + self.durations.get(job["label"], 1.0), job)
        self.max_in_flight = max(self.max_in_flight, len(self.running))
        return job["key"]

    def wait(self):
        if self.crash_after is not None and len(self.end) == self.crash_after:
            raise KeyboardInterrupt("killed")
        key = min(self.running, key=lambda k: (self.running[k][0], k))
        end, job = self.running.pop(key)
        self.now = end
        self.end[job["label"]] = end
        if job["label"] in self.fail:
            return [(key, {"ok": False, "error": "boom", "traceback": ""})]
        out = self.run_dir / "jobs" / key  # what a real job leaves: its record file, last
        out.mkdir(parents=True)
        acc = accuracy_of(job["label"])
        if job["kind"] == "fuse":
            (out / "fusion.json").write_text(json.dumps({"method": "average", "sources": [1, 2]}))
        else:
            if job["params"].get("save"):
                (out / "model").mkdir()
                (out / "model" / "config.json").write_text("{}")
            (out / "metrics.json").write_text(json.dumps({"test": {"accuracy": acc, "macro_f1": acc / 2}}))
        return [(key, {"ok": True, "result": {"accuracy": acc, "macro_f1": acc / 2, "wall_s": 1.0}})]

    def close(self):
        self.closed = True


def accuracy_of(label: str) -> float:
    return (sum(map(ord, label)) % 97) / 100


def make_plan() -> Plan:
    """Sources a, b, c; a fusion of b and c; targets on the fusion, on a, and on the pretrained base (seeds 0, 1)."""
    plan = Plan()
    src = {n: plan.add(make_job("finetune", f"source {n}", {"task": n, "save": True})) for n in "abc"}
    fuse = plan.add(make_job("fuse", "fuse b+c", {"sources": ["b", "c"]}, (src["b"].key, src["c"].key)))
    for seed in (0, 1):
        for cond, model, deps in (("fused", fuse.key, (fuse.key,)), ("intertrained", src["a"].key, (src["a"].key,)),
                                  ("pretrained", "base", ())):
            job = plan.add(make_job("finetune", f"{cond} -> t (seed {seed})", {"model": model, "seed": seed}, deps))
            plan.runs.append(PlannedRun(job_key=job.key, target="t", target_family="f", condition=cond,
                                        source_family=None if cond == "pretrained" else "all", sources=(),
                                        seed=seed, weight_decay=0.0))
    return plan


def test_fusion_starts_before_an_unrelated_source_finishes(tmp_path):
    plan = make_plan()
    ex = VirtualClock(tmp_path / "graph", workers=2, durations={"source a": 10})
    run_jobs(plan, tmp_path / "graph", ex)
    # b runs 0-1 beside a, then c 1-2, so the fusion of b and c starts at 2, long before a ends at 10
    assert ex.start["fuse b+c"] == 2 and ex.end["source a"] == 10

    barriers = VirtualClock(tmp_path / "barriers", workers=2, durations={"source a": 10})
    run_jobs(plan, tmp_path / "barriers", barriers, schedule="barriers")
    assert barriers.start["fuse b+c"] >= barriers.end["source a"]  # the old schedule waits for a
    assert ex.now < barriers.now


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_at_most_workers_in_flight_and_all_of_them_used(tmp_path, workers):
    ex = VirtualClock(tmp_path, workers=workers)
    run_jobs(make_plan(), tmp_path, ex)
    assert ex.max_in_flight == workers


def test_ready_jobs_start_in_plan_order(tmp_path):
    plan = make_plan()
    ex = VirtualClock(tmp_path, workers=1)
    run_jobs(plan, tmp_path, ex)
    # one worker: the plan lists every job after the jobs it needs, so plan order is the whole order
    assert ex.order == [j.label for j in plan.jobs.values()]


def test_failed_job_skips_its_dependents_through_any_depth_and_the_rest_go_on(tmp_path):
    plan = make_plan()
    ex = VirtualClock(tmp_path, workers=2, fail=("source b",))
    outcome = run_jobs(plan, tmp_path, ex)
    skipped = {"fuse b+c", "fused -> t (seed 0)", "fused -> t (seed 1)"}
    assert set(ex.start) == {j.label for j in plan.jobs.values()} - skipped
    failures = json.loads((tmp_path / "failures.json").read_text())
    assert [f["label"] for f in failures["failed"]] == ["source b"]
    by_label = {s["label"]: s for s in failures["skipped"]}
    assert set(by_label) == skipped
    key = {j.label: k for k, j in plan.jobs.items()}
    assert by_label["fuse b+c"]["because"] == [key["source b"]]
    assert by_label["fused -> t (seed 0)"]["because"] == [key["fuse b+c"]]
    assert [r["condition"] for r in by_label["fused -> t (seed 1)"]["runs"]] == ["fused"]
    assert len(outcome.failures.failed) == 1 and len(outcome.failures.skipped) == 3
    stored = {json.loads(line)["label"] for line in (tmp_path / "store.jsonl").read_text().splitlines()}
    assert stored == set(ex.start) - {"source b"}


def expected_results(plan: Plan, run_dir: Path) -> list[dict]:
    """The report rows derived by hand: each planned run whose job the store holds, with the stored numbers."""
    stored = {}
    for line in (run_dir / "store.jsonl").read_text().splitlines():
        row = json.loads(line)
        stored[row["key"]] = row["result"]
    rows = []
    for run in plan.runs:
        if run.job_key in stored:
            rows.append((run.target, run.condition, run.seed, stored[run.job_key]["accuracy"],
                         stored[run.job_key]["macro_f1"]))
    return rows


def results_rows(run_dir: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return [(r["target"], r["condition"], r["seed"], r["accuracy"], r["macro_f1"]) for r in rows]


def test_results_are_derived_from_plan_and_store_after_a_run_and_after_a_kill_and_resume(tmp_path):
    plan = make_plan()
    with pytest.raises(KeyboardInterrupt):
        run_jobs(plan, tmp_path, VirtualClock(tmp_path, workers=2, crash_after=5))
    partial = results_rows(tmp_path)
    assert partial == expected_results(plan, tmp_path) and 0 < len(partial) < len(plan.runs)

    again = VirtualClock(tmp_path, workers=2)
    outcome = run_jobs(plan, tmp_path, again)
    assert outcome.reused == 5 and outcome.executed == len(plan.jobs) - 5
    assert len(again.start) == len(plan.jobs) - 5  # no finished job ran again
    full = results_rows(tmp_path)
    assert full == expected_results(plan, tmp_path) and len(full) == len(plan.runs)
    assert [row[3] for row in full] == [accuracy_of(plan.jobs[r.job_key].label) for r in plan.runs]


def test_finished_but_unrecorded_job_is_recovered_from_its_output(tmp_path):
    plan = make_plan()
    run_jobs(plan, tmp_path, VirtualClock(tmp_path, workers=2))
    lines = (tmp_path / "store.jsonl").read_text().splitlines()
    (tmp_path / "store.jsonl").write_text("\n".join(lines[:-1]) + "\n")  # the last record was lost
    lost = json.loads(lines[-1])
    again = VirtualClock(tmp_path, workers=2)
    outcome = run_jobs(plan, tmp_path, again)
    assert again.start == {} and outcome.reused == len(plan.jobs)
    rows = {json.loads(line)["key"]: json.loads(line)["result"]
            for line in (tmp_path / "store.jsonl").read_text().splitlines()}
    assert rows[lost["key"]]["recovered"] is True
    assert rows[lost["key"]].get("accuracy") == lost["result"].get("accuracy")


def test_only_runs_the_named_jobs_and_what_they_need(tmp_path):
    plan = make_plan()
    target = next(r.job_key for r in plan.runs if r.condition == "fused")
    ex = VirtualClock(tmp_path, workers=2)
    run_jobs(plan, tmp_path, ex, only=[target])
    assert set(ex.start) == {"source b", "source c", "fuse b+c", "fused -> t (seed 0)"}


def test_runner_does_not_close_an_executor_it_was_given(tmp_path):
    ex = VirtualClock(tmp_path, workers=2)
    run_jobs(make_plan(), tmp_path, ex)
    assert ex.end and not ex.closed


def test_results_are_rewritten_at_most_every_few_seconds_and_at_the_end(tmp_path):
    from basefuse.experiments.results import ResultsWriter
    from basefuse.experiments.store import JobStore

    plan = make_plan()
    store = JobStore(tmp_path / "store.jsonl")
    run = plan.runs[0]
    store.append(run.job_key, "finetune", "x", {"accuracy": 0.25, "macro_f1": 0.5, "wall_s": 1.0})
    results = tmp_path / "results.jsonl"
    ResultsWriter(tmp_path, plan, store, every_s=3600).changed()
    assert not results.exists()  # the last rewrite (its start) is too recent
    ResultsWriter(tmp_path, plan, store, every_s=0).changed()
    assert [json.loads(line)["accuracy"] for line in results.read_text().splitlines()] == [0.25]
    results.unlink()
    ResultsWriter(tmp_path, plan, store, every_s=3600).write()
    assert results_rows(tmp_path) == [(run.target, run.condition, run.seed, 0.25, 0.5)]


def test_derive_results_rewrites_results_from_plan_and_store(tmp_path):
    from basefuse.experiments.runner import derive_results

    plan = make_plan()
    run_jobs(plan, tmp_path, VirtualClock(tmp_path, workers=2, crash_after=None))
    (tmp_path / "results.jsonl").write_text("")  # e.g. a run killed before its last rewrite
    derive_results(plan, tmp_path)
    assert results_rows(tmp_path) == expected_results(plan, tmp_path) and len(results_rows(tmp_path)) == 6


# ---- issue 17: a job starts only after ALL of its dependencies end; a torn store line on resume -----------------

JOIN_DURATIONS = {"fast": 1.0, "mid": 3.0, "slow": 5.0, "free": 1.0, "join": 1.0, "after": 1.0}


def join_plan(dep_order: tuple[str, ...]) -> Plan:
    """fast, mid and slow (1, 3, 5 time units) and an unrelated job; `join` needs all three (listed in
    `dep_order`), `after` needs join."""
    plan = Plan()
    key = {n: plan.add(make_job("finetune", n, {"task": n, "save": True})).key for n in ("fast", "mid", "slow", "free")}
    key["join"] = plan.add(make_job("fuse", "join", {"sources": list(dep_order)}, tuple(key[n] for n in dep_order))).key
    after = plan.add(make_job("finetune", "after", {"model": key["join"]}, (key["join"],)))
    plan.runs.append(PlannedRun(job_key=after.key, target="t", target_family="f", condition="fused",
                                source_family="all", sources=(), seed=0, weight_decay=0.0))
    return plan


@pytest.mark.parametrize("dep_order", [("fast", "mid", "slow"), ("slow", "fast", "mid"), ("mid", "slow", "fast")])
@pytest.mark.parametrize("workers,schedule", [(3, "graph"), (4, "graph"), (2, "graph"), (3, "barriers")])
def test_a_job_starts_only_after_all_of_its_dependencies_end(tmp_path, dep_order, workers, schedule):
    plan = join_plan(dep_order)
    ex = VirtualClock(tmp_path, workers=workers, durations=JOIN_DURATIONS)
    run_jobs(plan, tmp_path, ex, schedule=schedule)
    assert set(ex.start) == set(JOIN_DURATIONS)
    for job in plan.jobs.values():
        for dep in job.deps:
            assert ex.start[job.label] >= ex.end[plan.jobs[dep].label], (job.label, plan.jobs[dep].label)
    # By hand: with 3 or more workers fast, mid and slow start at 0 and slow ends last, at 5. With 2, fast and
    # mid start at 0, slow when fast ends (1) and ends at 6. join starts then, after one unit more.
    slow_end = 5.0 if workers >= 3 else 6.0
    assert (ex.start["join"], ex.start["after"]) == (slow_end, slow_end + 1)


def test_torn_last_store_line_is_skipped_its_job_recovered_not_rerun_and_results_unchanged(tmp_path):
    from basefuse.experiments.store import JobStore

    plan = make_plan()
    clean = tmp_path / "clean"
    run_jobs(plan, clean, VirtualClock(clean, workers=2))
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_jobs(plan, run, VirtualClock(run, workers=2, crash_after=5))
    store = run / "store.jsonl"
    lines = store.read_bytes().splitlines(keepends=True)
    assert len(lines) == 5
    torn = json.loads(lines[-1])
    store.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # the crash cut the last record
    assert JobStore(store).skipped_lines == 1 and torn["key"] not in JobStore(store)

    again = VirtualClock(run, workers=2)
    outcome = run_jobs(plan, run, again)
    finished = {json.loads(line)["label"] for line in lines}
    assert set(again.start) == {j.label for j in plan.jobs.values()} - finished  # the torn line's job not rerun
    assert (outcome.reused, outcome.executed) == (5, len(plan.jobs) - 5)
    assert results_rows(run) == results_rows(clean) and len(results_rows(run)) == len(plan.runs)
    reread = JobStore(store)  # the torn half stays one unreadable line; every record after it is whole
    assert reread.skipped_lines == 1 and set(reread.results) == set(plan.jobs)
    assert reread.get(torn["key"])["recovered"] is True  # read back from the job's complete output
