"""Run an experiment end to end: plan, execute what is not done yet, write results and the report."""
from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from basefuse.errors import BasefuseError
from basefuse.executors import Executor, LocalExecutor
from basefuse.experiments.config import ExperimentConfig, load_experiment_config
from basefuse.experiments.failures import Failures, attempt_job
from basefuse.experiments.jobs import Job, output_complete, read_result, summarise_metrics
from basefuse.experiments.leakage import LEAKAGE_FILE, task_content, write_leakage
from basefuse.experiments.plan_record import write_plan
from basefuse.experiments.protocol import Plan, PlannedRun, TaskFacts, build_plan
from basefuse.experiments.records import RunRecord
from basefuse.experiments.rundir import LOCK_NAME, own_run_dir, remove_leftovers
from basefuse.experiments.store import JobStore
from basefuse.io import append_jsonl, write_json, write_text_atomic


@dataclass
class RunSummary:
    run_dir: Path
    jobs_total: int
    jobs_executed: int
    jobs_reused: int
    wall_s: float
    records: list[RunRecord]
    report_html: Path | None = None
    failures: Failures | None = None  # failed and skipped jobs of this run (also in RUN/failures.json)


def _make_run_dir(run_dir: Path, force: bool) -> None:
    """Create the folder; refuse one that holds something else (before anything, even the lock, is written)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        # A --dry-run leaves only leakage.json, which a run may take over.
        foreign = any(p.name not in (LOCK_NAME, LEAKAGE_FILE) for p in run_dir.iterdir()) \
            and not (run_dir / "run.json").exists() and not (run_dir / "store.jsonl").exists()
    except OSError as e:
        raise BasefuseError(f"cannot use {run_dir} as the run directory: {e.strerror or e}; "
                            f"choose a writable folder with --out") from None
    if foreign and not force:
        raise BasefuseError(f"{run_dir} is not empty and is not a basefuse run: choose an empty or new folder")


def _prepare_run_dir(cfg: ExperimentConfig, run_dir: Path, force: bool) -> None:
    """A run directory belongs to one config: refuse to mix results of different ones."""
    meta_path = run_dir / "run.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, OSError):
            meta = None
        if not isinstance(meta, dict) and not force:
            raise BasefuseError(f"{meta_path} is corrupt (not a UTF-8 JSON object): pass --force to rewrite it "
                                f"(finished jobs are still reused by content), or use another --out")
        if isinstance(meta, dict) and meta.get("config_fingerprint") != cfg.fingerprint() and not force:
            raise BasefuseError(
                f"{run_dir} holds a run of a different config ({meta.get('config_name', '?')}): use another --out, "
                f"or --force to switch this folder to the new config (finished jobs are still reused by content)")
    from basefuse import __version__

    try:
        write_text_atomic(run_dir / "experiment.yaml",
                          yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False))
        write_json(meta_path, {"config_name": cfg.name, "config_fingerprint": cfg.fingerprint(),
                               "basefuse_version": __version__})
    except OSError as e:
        raise BasefuseError(f"cannot write to the run directory {run_dir}: {e.strerror or e}; "
                            f"choose a writable folder with --out") from None


def gather_task_facts(cfg: ExperimentConfig) -> dict[str, TaskFacts]:
    """Load each task once per distinct budget (from the cache after the first time) for its size and fingerprints."""
    from basefuse.data.api import load_task

    facts: dict[str, TaskFacts] = {}
    budgets = {None, cfg.budgets.max_train_source, cfg.budgets.max_train_target}
    for name, ref in cfg.task_refs().items():
        loaded = {b: load_task(ref.load_spec, max_train=b, text_col=ref.text_col, label_col=ref.label_col,
                               pair_col=ref.pair_col, family=cfg.family_of(name)) for b in budgets}
        facts[name] = TaskFacts(train_size=len(loaded[None].train),
                                fingerprint_source=loaded[cfg.budgets.max_train_source].fingerprint,
                                fingerprint_target=loaded[cfg.budgets.max_train_target].fingerprint,
                                content=task_content(loaded[None]))
    return facts


def make_plan(cfg: ExperimentConfig) -> Plan:
    from basefuse.checkpoints.source import resolve
    from basefuse.finetuning.api import base_fingerprint
    from basefuse.models import resolve_model

    base = resolve_model(cfg.base_model)
    if not Path(base).is_dir():
        # A hub id: fetch it now and use that snapshot for every job, so the fingerprint is of the
        # weights themselves and a run resumed after the hub repo changed does not reuse stale jobs.
        base = str(resolve(base).resolve())
    return build_plan(cfg, gather_task_facts(cfg), base, base_fingerprint(base))


def _record(run: PlannedRun, result: dict[str, Any]) -> RunRecord:
    return RunRecord(**run.record_fields(), accuracy=result["accuracy"], macro_f1=result["macro_f1"])


def records_from(plan: Plan, store: JobStore) -> list[RunRecord]:
    out = []
    for run in plan.runs:
        result = store.get(run.job_key)
        if result is not None and "accuracy" in result:
            out.append(_record(run, result))
    return out


def write_results(run_dir: Path, records: list[RunRecord]) -> Path:
    """Rewrite results.jsonl whole (it is derived from the store), atomically."""
    path = run_dir / "results.jsonl"
    write_text_atomic(path, "".join(r.model_dump_json() + "\n" for r in records))
    return path


def append_results(run_dir: Path, records: list[RunRecord]) -> None:
    """Append finished rows as they come (fsync'd), so a killed run still leaves its results readable."""
    if records:
        try:
            append_jsonl(run_dir / "results.jsonl", [r.model_dump(mode="json") for r in records])
        except OSError as e:
            raise BasefuseError(f"cannot append to {run_dir / 'results.jsonl'}: {e.strerror or e}; free space "
                                f"and rerun (finished jobs are kept)") from None


def _levels(plan: Plan) -> list[list[Job]]:
    """Jobs grouped by depth in the graph: each level needs only jobs of earlier levels."""
    depth: dict[str, int] = {}
    for key, job in plan.jobs.items():  # every job comes after the jobs it needs
        depth[key] = 1 + max((depth[d] for d in job.deps), default=-1)
    levels: list[list[Job]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for key, job in plan.jobs.items():
        levels[depth[key]].append(job)
    return levels


def _execute_stage(jobs: list[Job], run_dir: Path, store: JobStore, executor: Executor, device: str | None,
                   on_done: Any, on_failed: Any, failures: Failures) -> None:
    """Run the jobs of one stage that are not done yet; record each as soon as it finishes or fails.

    A job whose inputs failed is skipped; a failed job does not stop the others.
    """
    todo = []
    for job in jobs:
        blocked = failures.blocking(job.deps)
        if blocked:
            on_failed(job, None, blocked)
        elif job.key in store and output_complete(run_dir, job):
            on_done(job, reused=True)
        elif output_complete(run_dir, job):
            # Finished but not recorded (a crash between the two): recover it from its output.
            store.append(job.key, job.kind, job.label, _summarise(job, read_result(run_dir, job)))
            on_done(job, reused=True)
        else:
            todo.append(job)
    fn = functools.partial(attempt_job, run_dir=str(run_dir), device=device)
    for i, outcome in executor.map(fn, [j.to_dict() for j in todo]):
        if outcome["ok"]:
            store.append(todo[i].key, todo[i].kind, todo[i].label, outcome["result"])
            on_done(todo[i], reused=False)
        else:
            on_failed(todo[i], outcome, [])


def _summarise(job: Job, result: dict[str, Any]) -> dict[str, Any]:
    if job.kind == "fuse":
        return {"method": result.get("method"), "recovered": True}
    return summarise_metrics(result) | {"recovered": True}


def run_experiment(config: ExperimentConfig | str | Path, run_dir: str | Path, *, executor: Executor | None = None,
                   device: str | None = None, force: bool = False, progress: bool = True,
                   report: bool = True) -> RunSummary:
    """Run (or resume) an experiment in `run_dir`; finished jobs are never redone."""
    cfg = config if isinstance(config, ExperimentConfig) else load_experiment_config(config)
    run_dir = Path(run_dir).resolve()  # jobs may run in other processes or on other Ray nodes
    _make_run_dir(run_dir, force)
    with own_run_dir(run_dir):
        remove_leftovers(run_dir)  # what dead runs left: we own the folder, nobody else writes there
        _prepare_run_dir(cfg, run_dir, force)
        return _run_owned(cfg, run_dir, executor=executor or LocalExecutor(), device=device, progress=progress,
                          report=report)


def _run_owned(cfg: ExperimentConfig, run_dir: Path, *, executor: Executor, device: str | None, progress: bool,
               report: bool) -> RunSummary:
    t0 = time.perf_counter()
    plan = make_plan(cfg)
    write_plan(run_dir, plan)
    write_leakage(run_dir, plan.leakage)
    store = JobStore(run_dir / "store.jsonl")
    if store.skipped_lines:
        print(f"basefuse: warning: {store.path}: skipped {store.skipped_lines} unreadable line(s) (not UTF-8 "
              f"JSON, e.g. half-written in a crash); their jobs are recovered or run again", file=sys.stderr)
    n_total = len(plan.jobs)
    counts = {"executed": 0, "reused": 0}
    failures = Failures()

    from basefuse.experiments.progress import JobProgress

    with JobProgress(n_total, enabled=progress) as bar:
        runs_of: dict[str, list[PlannedRun]] = {}
        for run in plan.runs:
            runs_of.setdefault(run.job_key, []).append(run)

        def on_done(job: Job, reused: bool) -> None:
            counts["reused" if reused else "executed"] += 1
            result = store.get(job.key)
            bar.advance(job, result, reused)
            if not reused and job.key in runs_of:
                append_results(run_dir, [_record(r, result) for r in runs_of[job.key]])

        def on_failed(job: Job, outcome: dict[str, Any] | None, blocked: list[str]) -> None:
            """`outcome` of a job that ran and failed, or None for one skipped because `blocked` failed."""
            rows = [r.record_fields() for r in runs_of.get(job.key, [])]
            if outcome is None:
                failures.add_skipped(job, blocked, rows)
            else:
                counts["executed"] += 1
                failures.add_failed(job, outcome, rows)
            bar.fail(job, None if outcome is None else outcome["error"])
            failures.write(run_dir)

        try:
            for depth, jobs in enumerate(_levels(plan)):
                bar.stage(f"level {depth}", len(jobs))
                _execute_stage(jobs, run_dir, store, executor, device, on_done, on_failed, failures)
        finally:
            try:
                write_results(run_dir, records_from(plan, store))
                failures.write(run_dir)
            except OSError as e:  # e.g. a full disk: the store is the record, results.jsonl is derived from it
                print(f"basefuse: warning: cannot rewrite results in {run_dir}: {e.strerror or e}; "
                      f"the next run rewrites them", file=sys.stderr)
            executor.close()

    records = records_from(plan, store)
    summary = RunSummary(run_dir=run_dir, jobs_total=n_total, jobs_executed=counts["executed"],
                         jobs_reused=counts["reused"], wall_s=time.perf_counter() - t0, records=records,
                         failures=failures)
    if report and records and "pretrained" in cfg.conditions:  # gains are measured against pretrained
        from basefuse.reports.build import build_report

        summary.report_html = Path(build_report(run_dir).html)
    return summary
