"""Run an experiment end to end: plan, execute what is not done yet, write results and the report."""
from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from basefuse.errors import BasefuseError
from basefuse.executors import Executor, LocalExecutor
from basefuse.experiments.config import ExperimentConfig, load_experiment_config
from basefuse.experiments.jobs import Job, execute_job, output_complete, read_result, summarise_metrics
from basefuse.experiments.leakage import LEAKAGE_FILE, task_content, write_leakage
from basefuse.experiments.plan_record import write_plan
from basefuse.experiments.protocol import Plan, PlannedRun, TaskFacts, build_plan
from basefuse.experiments.records import RunRecord
from basefuse.experiments.store import JobStore
from basefuse.io import append_jsonl, write_json


@dataclass
class RunSummary:
    run_dir: Path
    jobs_total: int
    jobs_executed: int
    jobs_reused: int
    wall_s: float
    records: list[RunRecord]
    report_html: Path | None = None


def _prepare_run_dir(cfg: ExperimentConfig, run_dir: Path, force: bool) -> None:
    """A run directory belongs to one config: refuse to mix results of different ones."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BasefuseError(f"cannot use {run_dir} as the run directory: {e.strerror or e}; "
                            f"choose a writable folder with --out") from None
    meta_path = run_dir / "run.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            meta = {}
        if meta.get("config_fingerprint") != cfg.fingerprint() and not force:
            raise BasefuseError(
                f"{run_dir} holds a run of a different config ({meta.get('config_name', '?')}): use another --out, "
                f"or --force to switch this folder to the new config (finished jobs are still reused by content)")
    elif (any(p.name != LEAKAGE_FILE for p in run_dir.iterdir())  # a --dry-run leaves only the leakage table
          and not (run_dir / "store.jsonl").exists() and not force):
        raise BasefuseError(f"{run_dir} is not empty and is not a basefuse run: choose an empty or new folder")
    from basefuse import __version__

    (run_dir / "experiment.yaml").write_text(
        yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False), encoding="utf-8")
    write_json(meta_path, {"config_name": cfg.name, "config_fingerprint": cfg.fingerprint(),
                           "basefuse_version": __version__})


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
    tmp = path.with_name(".results.jsonl.tmp")
    tmp.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    tmp.replace(path)
    return path


def append_results(run_dir: Path, records: list[RunRecord]) -> None:
    """Append finished rows as they come (fsync'd), so a killed run still leaves its results readable."""
    if records:
        append_jsonl(run_dir / "results.jsonl", [r.model_dump(mode="json") for r in records])


def _execute_stage(jobs: list[Job], run_dir: Path, store: JobStore, executor: Executor, device: str | None,
                   on_done: Any) -> None:
    """Run the jobs of one stage that are not done yet; record each as soon as it finishes."""
    todo = []
    for job in jobs:
        if job.key in store and output_complete(run_dir, job):
            on_done(job, reused=True)
        elif output_complete(run_dir, job):
            # Finished but not recorded (a crash between the two): recover it from its output.
            store.append(job.key, job.kind, job.label, _summarise(job, read_result(run_dir, job)))
            on_done(job, reused=True)
        else:
            todo.append(job)
    fn = functools.partial(execute_job, run_dir=str(run_dir), device=device)
    for i, result in executor.map(fn, [j.to_dict() for j in todo]):
        store.append(todo[i].key, todo[i].kind, todo[i].label, result)
        on_done(todo[i], reused=False)


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
    t0 = time.perf_counter()
    _prepare_run_dir(cfg, run_dir, force)
    plan = make_plan(cfg)
    write_plan(run_dir, plan)
    write_leakage(run_dir, plan.leakage)
    store = JobStore(run_dir / "store.jsonl")
    executor = executor or LocalExecutor()
    n_total = sum(len(jobs) for _, jobs in plan.stages())
    counts = {"executed": 0, "reused": 0}

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

        try:
            for stage, jobs in plan.stages():
                bar.stage(stage, len(jobs))
                _execute_stage(jobs, run_dir, store, executor, device, on_done)
        finally:
            write_results(run_dir, records_from(plan, store))
            executor.close()

    records = records_from(plan, store)
    summary = RunSummary(run_dir=run_dir, jobs_total=n_total, jobs_executed=counts["executed"],
                         jobs_reused=counts["reused"], wall_s=time.perf_counter() - t0, records=records)
    if report and records and "pretrained" in cfg.conditions:  # gains are measured against pretrained
        from basefuse.reports.build import build_report

        summary.report_html = Path(build_report(run_dir).html)
    return summary
