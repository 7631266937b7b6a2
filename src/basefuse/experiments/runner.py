"""Run an experiment end to end: plan, schedule what is not done yet on an executor, write the results.

The report is built by the command that ran the experiment (cli/experiment_cmd.py), never here: the experiment
layer does not import the report layer above it."""
from __future__ import annotations

import contextlib
import functools
import heapq
import json
import sys
import time
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from basefuse.errors import BasefuseError
from basefuse.executors import Executor, LocalExecutor
from basefuse.experiments.config import ExperimentConfig, load_experiment_config
from basefuse.experiments.failures import Failures, attempt_job, raise_if_failed
from basefuse.experiments.jobs import Job, output_complete, recovered_result
from basefuse.experiments.leakage import LEAKAGE_FILE, task_content, write_leakage
from basefuse.experiments.plan_record import write_plan
from basefuse.experiments.protocol import Plan, PlannedRun, TaskFacts, build_plan
from basefuse.experiments.records import RunRecord
from basefuse.experiments.results import RESULTS, ResultsWriter, records_from
from basefuse.experiments.rundir import LOCK_NAME, own_run_dir, remove_leftovers
from basefuse.experiments.store import JobStore
from basefuse.io import write_error, write_json, write_text_atomic

if TYPE_CHECKING:
    from basefuse.data.model_view import ModelView
    from basefuse.experiments.leakage import BaseModelFacts
    from basefuse.experiments.protocol import CheckpointFacts, Selected


@dataclass
class RunSummary:
    run_dir: Path
    jobs_total: int
    jobs_executed: int
    jobs_reused: int
    wall_s: float
    records: list[RunRecord]
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


def _check_run_dir(cfg: ExperimentConfig, run_dir: Path, force: bool) -> None:
    """A run directory belongs to one config: refuse to mix results of different ones."""
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        return
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


def _write_run_meta(cfg: ExperimentConfig, run_dir: Path) -> None:
    """experiment.yaml and run.json: written once the plan is made, so a config the planner refuses leaves
    nothing that would tie the folder to it."""
    from basefuse import __version__

    try:  # run.json first: a disk that fills between the two must not leave a folder no run would take back
        write_json(run_dir / "run.json", {"config_name": cfg.name, "config_fingerprint": cfg.fingerprint(),
                                          "basefuse_version": __version__})
        data = cfg.model_dump(mode="json", exclude_none=True)
        if "confirmatory" not in cfg.model_fields_set:  # the report tells a plan the config named from the defaults
            data.pop("confirmatory", None)
        write_text_atomic(run_dir / "experiment.yaml", yaml.safe_dump(data, sort_keys=False))
    except OSError as e:
        raise write_error(e, f"cannot write to the run directory {run_dir}: {e.strerror or e}; "
                             f"choose a writable folder with --out") from None


def gather_task_facts(cfg: ExperimentConfig, view: "ModelView | None" = None) -> dict[str, TaskFacts]:
    """Load each task once per distinct budget (from the cache after the first time) for its size and fingerprints;
    `view`: the base model's tokenizer, for the leakage check (None: texts are compared normalised only)."""
    from basefuse.data.api import load_task

    facts: dict[str, TaskFacts] = {}
    budgets = {None, cfg.budgets.max_train_source, cfg.budgets.max_train_target}
    # the tasks pool checkpoints declare count in the leakage check like source tasks (read at the same budgets)
    for name, ref in (cfg.task_refs() | cfg.provenance_refs()).items():
        loaded = {b: load_task(ref.load_spec, max_train=b, text_col=ref.text_col, label_col=ref.label_col,
                               pair_col=ref.pair_col, family=cfg.family_or_none(name)) for b in budgets}
        facts[name] = TaskFacts(train_size=len(loaded[None].train),
                                fingerprint_source=loaded[cfg.budgets.max_train_source].fingerprint,
                                fingerprint_target=loaded[cfg.budgets.max_train_target].fingerprint,
                                fingerprint_full=loaded[None].fingerprint,
                                content=task_content(loaded[None], view))
    return facts


@dataclass(frozen=True)
class PlanInputs:
    """What planning reads once: the base model, the pool checkpoints and every task's facts."""

    base: str
    base_fingerprint: str
    facts: dict[str, TaskFacts]
    base_model: "BaseModelFacts"
    checkpoints: dict[str, "CheckpointFacts"]
    base_origin: dict[str, str] = field(default_factory=dict)  # how a node without `base` fetches it (locate.py)

    @property
    def base_ref(self) -> dict[str, str]:
        return {"base": self.base, **self.base_origin, "fingerprint": self.base_fingerprint}


def plan_inputs(cfg: ExperimentConfig) -> PlanInputs:
    from basefuse.finetuning.api import base_fingerprint
    from basefuse.models import resolve_model

    # a hub id is fetched now and that snapshot used for every job, so the fingerprint is of the weights
    # themselves and a run resumed after the hub repo changed does not reuse stale jobs
    base = str(Path(resolve_model(cfg.base_model)).resolve())
    from basefuse.data.model_view import model_view
    from basefuse.experiments.base_provenance import base_model_facts
    from basefuse.experiments.locate import origin_of
    from basefuse.experiments.pool import resolve_pool

    pool = resolve_pool(cfg, base)  # before anything else: a checkpoint of another model is refused at once
    view = model_view(base)
    return PlanInputs(base, base_fingerprint(base), gather_task_facts(cfg, view), base_model_facts(cfg, base, view),
                      pool, origin_of(cfg.base_model, base))


def make_plan(cfg: ExperimentConfig, selected: "dict[tuple[str, ...], Selected] | None" = None,
              inputs: PlanInputs | None = None) -> Plan:
    """The experiment's plan. With `selection` in the config, its conditions are planned only once `selected` (what
    the selection chose) is given; without it they are left out (a dry run says so)."""
    i = inputs or plan_inputs(cfg)
    return build_plan(cfg, i.facts, i.base, i.base_fingerprint, i.base_model, checkpoints=i.checkpoints,
                      selected=selected, base_origin=i.base_origin)


Schedule = Literal["graph", "barriers"]


@dataclass
class JobsOutcome:
    """What one `run_jobs` call did."""

    executed: int = 0  # jobs run (finished or failed)
    reused: int = 0  # jobs found done (recorded, or recovered from their complete output)
    failures: Failures = field(default_factory=Failures)  # failed and skipped jobs (also RUN/failures.json)


def _depths(plan: Plan) -> dict[str, int]:
    """Each job's depth in the graph: the old schedule ran one depth after the other."""
    depth: dict[str, int] = {}
    for key, job in plan.jobs.items():  # every job comes after the jobs it needs
        depth[key] = 1 + max((depth[d] for d in job.deps), default=-1)
    return depth


def _needed(plan: Plan, only: Iterable[str] | None) -> list[str]:
    """The jobs to run, in plan order: `only` and every job they need (all of the plan by default)."""
    if only is None:
        return list(plan.jobs)
    unknown = [k for k in only if k not in plan.jobs]
    if unknown:
        raise BasefuseError(f"job {unknown[0]!r} is not in the plan: pass keys of plan.jobs")
    needed: set[str] = set()
    stack = list(only)
    while stack:
        key = stack.pop()
        if key not in needed:
            needed.add(key)
            stack.extend(plan.jobs[key].deps)
    return [k for k in plan.jobs if k in needed]


class _Scheduler:
    """Hands each job to the executor as soon as the jobs it needs are done.

    At most `executor.workers` jobs are in flight; ready jobs go in plan order (with `barriers`, only
    those of the lowest depth not finished yet: the old schedule, kept to measure against). Each
    finished job is recorded in the store at once; a failed job's dependents, through any depth, are
    skipped while the other jobs go on.
    """

    def __init__(self, plan: Plan, keys: list[str], run_dir: Path, store: JobStore, executor: Executor,
                 device: str | None, bar: Any, results: ResultsWriter, outcome: JobsOutcome,
                 barriers: bool) -> None:
        self.plan, self.keys, self.run_dir, self.store, self.executor = plan, keys, run_dir, store, executor
        self.bar, self.results, self.outcome = bar, results, outcome
        self.fn = functools.partial(attempt_job, run_dir=str(run_dir), device=device)
        self.index = {k: i for i, k in enumerate(keys)}
        depths = _depths(plan)
        self.level = {k: depths[k] if barriers else 0 for k in keys}
        self.unfinished = Counter(self.level.values())  # per level, jobs not finished, failed or skipped
        self.current = 0  # the lowest level with unfinished jobs
        self.missing: dict[str, int] = {}  # waiting job -> how many of its deps are not done yet
        self.dependents: dict[str, list[str]] = {k: [] for k in keys}
        self.ready: list[tuple[int, int]] = []  # heap of (level, plan index)
        self.in_flight: dict[Hashable, Job] = {}
        self.finished = 0
        self.runs_of: dict[str, list[PlannedRun]] = {}
        for run in plan.runs:
            self.runs_of.setdefault(run.job_key, []).append(run)

    def run(self) -> None:
        done = set()
        for key in self.keys:
            job = self.plan.jobs[key]
            if output_complete(self.run_dir, job):
                if key not in self.store:  # finished but not recorded (a crash between the two): recover it
                    self.store.append(key, job.kind, job.label, recovered_result(self.run_dir, job))
                done.add(key)
                self._finish(job)
                self.outcome.reused += 1
                self.bar.advance(job, self.store.get(key), reused=True)
        for key in self.keys:
            if key not in done:
                deps = [d for d in self.plan.jobs[key].deps if d not in done]
                self.missing[key] = len(deps)
                for d in deps:
                    self.dependents[d].append(key)
                if not deps:
                    heapq.heappush(self.ready, (self.level[key], self.index[key]))
        while True:
            self._submit_ready()
            if not self.in_flight:
                break
            for handle, outcome in self.executor.wait():
                self._collect(self.in_flight.pop(handle), outcome)
        assert self.finished == len(self.keys), "the scheduler stopped with jobs left"

    def _submit_ready(self) -> None:
        while self.ready and len(self.in_flight) < self.executor.workers and self.ready[0][0] <= self.current:
            job = self.plan.jobs[self.keys[heapq.heappop(self.ready)[1]]]
            self.in_flight[self.executor.submit(self.fn, job.to_dict())] = job
        self._show()

    def _collect(self, job: Job, outcome: dict[str, Any]) -> None:
        self.outcome.executed += 1
        if outcome["ok"]:
            self.store.append(job.key, job.kind, job.label, outcome["result"])
            self._finish(job)
            self.bar.advance(job, outcome["result"], reused=False)
            self.results.changed()
            for d in self.dependents[job.key]:
                self.missing[d] -= 1
                if self.missing[d] == 0:
                    heapq.heappush(self.ready, (self.level[d], self.index[d]))
            return
        failures = self.outcome.failures
        failures.add_failed(job, outcome, self._rows(job))
        self._finish(job)
        self.bar.fail(job, outcome["error"])
        for key in self.keys[self.index[job.key] + 1:]:  # dependents come after in plan order
            blocked = failures.blocking(self.plan.jobs[key].deps)
            if self.missing.get(key, 0) > 0 and blocked and key not in failures.skipped:
                failures.add_skipped(self.plan.jobs[key], blocked, self._rows(self.plan.jobs[key]))
                self._finish(self.plan.jobs[key])
                self.bar.fail(self.plan.jobs[key], None)
        failures.write(self.run_dir)

    def _finish(self, job: Job) -> None:
        self.finished += 1
        self.unfinished[self.level[job.key]] -= 1
        while self.unfinished[self.current] == 0 and self.current < max(self.unfinished, default=0):
            self.current += 1

    def _rows(self, job: Job) -> list[dict[str, Any]]:
        return [r.record_fields() for r in self.runs_of.get(job.key, [])]

    def _show(self) -> None:
        running = len(self.in_flight)
        self.bar.counts(done=self.finished, running=running, waiting=len(self.keys) - self.finished - running)


def run_jobs(plan: Plan, run_dir: str | Path, executor: Executor, *, only: Iterable[str] | None = None,
             device: str | None = None, progress: bool = False, schedule: Schedule = "graph",
             results_file: bool = True) -> JobsOutcome:
    """Run the jobs of `plan` in `run_dir` that are not done yet (with `only`: those keys and the jobs they
    need), each as soon as the jobs it needs are done; record each in the store and rewrite results.jsonl.

    For scripts and benchmarks that run part of a plan; `run_experiment` is the whole run. Holds the run
    directory's lock meanwhile. Never closes `executor`. `schedule="barriers"`: one depth at a time (for
    benchmarks only).
    """
    run_dir = Path(run_dir).resolve()  # jobs may run in other processes or on other Ray nodes
    run_dir.mkdir(parents=True, exist_ok=True)
    with own_run_dir(run_dir):
        remove_leftovers(run_dir)
        check_shared(executor, run_dir, plan)
        return _run_graph(plan, run_dir, executor, only=only, device=device, progress=progress, schedule=schedule,
                          results_file=results_file)


def check_shared(executor: Executor, run_dir: Path, plan: Plan, extra: Iterable[str] = ()) -> None:
    """Before any job: every machine of the executor must see the run directory and every local path the plan's jobs
    read (hub ids and built-in models excepted: each node fetches those itself); `extra`: further data specs."""
    from basefuse.experiments.locate import local_paths

    check = getattr(executor, "check_shared", None)  # an executor without it runs jobs where this process is
    if check is not None:
        check(run_dir, local_paths((j.params for j in plan.jobs.values()), extra))


def derive_results(plan: Plan, run_dir: str | Path) -> Path:
    """Rewrite RUN/results.jsonl from the plan and the store now, e.g. after a run was killed by SIGKILL (it is
    otherwise rewritten by the run itself). Holds the run directory's lock meanwhile."""
    run_dir = Path(run_dir).resolve()
    with own_run_dir(run_dir):
        ResultsWriter(run_dir, plan, JobStore(run_dir / "store.jsonl")).write()
    return run_dir / RESULTS


def _run_graph(plan: Plan, run_dir: Path, executor: Executor, *, only: Iterable[str] | None = None,
               device: str | None, progress: bool, schedule: Schedule = "graph",
               results_file: bool = True) -> JobsOutcome:
    """Schedule the jobs on the executor in a run directory this process owns; `results_file`: the plan's rows
    are the run's results.jsonl (a selection round's plan has none, and must not empty the file)."""
    if schedule not in ("graph", "barriers"):
        raise ValueError(f"unknown schedule {schedule!r}: graph or barriers")
    store = JobStore(run_dir / "store.jsonl")
    if store.skipped_lines:
        print(f"basefuse: warning: {store.path}: skipped {store.skipped_lines} unreadable line(s) (not UTF-8 "
              f"JSON, e.g. half-written in a crash); their jobs are recovered or run again", file=sys.stderr)
    keys = _needed(plan, only)
    outcome = JobsOutcome()
    results = ResultsWriter(run_dir, plan, store, enabled=results_file)

    from basefuse.experiments.progress import JobProgress

    with JobProgress(len(keys), enabled=progress) as bar:
        try:
            _Scheduler(plan, keys, run_dir, store, executor, device, bar, results, outcome,
                       barriers=schedule == "barriers").run()
        finally:
            results.write()  # at the end, whatever ended the run
            outcome.failures.write(run_dir)  # a failed write is a warning
    return outcome


def run_experiment(config: ExperimentConfig | str | Path, run_dir: str | Path, *, executor: Executor | None = None,
                   device: str | None = None, force: bool = False, progress: bool = True,
                   schedule: Schedule = "graph") -> RunSummary:
    """Run (or resume) an experiment in `run_dir`; finished jobs are never redone.

    `executor`: where jobs run (default: one by one in this process); it is not closed here, whoever
    created it closes it. `schedule="barriers"` runs the graph one depth at a time (for benchmarks only).
    """
    cfg = config if isinstance(config, ExperimentConfig) else load_experiment_config(config)
    run_dir = Path(run_dir).resolve()  # jobs may run in other processes or on other Ray nodes
    t0 = time.perf_counter()
    created, had_lock = not run_dir.exists(), (run_dir / LOCK_NAME).exists()
    _make_run_dir(run_dir, force)
    with own_run_dir(run_dir), contextlib.ExitStack() as stack:
        remove_leftovers(run_dir)  # what dead runs left: we own the folder, nobody else writes there
        try:
            _check_run_dir(cfg, run_dir, force)
            inputs = plan_inputs(cfg)
            plan = make_plan(cfg, inputs=inputs)  # refuses leakage and impossible protocols before anything is written
            if executor is not None:  # the selection's probe tasks are read too, before its conditions are planned
                probes = [cfg.task_refs()[t].load_spec for t in cfg.selection.probe] if cfg.selection else []
                check_shared(executor, run_dir, plan, probes)
        except BaseException:
            _undo_new_run_dir(run_dir, created, had_lock)
            raise
        _write_run_meta(cfg, run_dir)
        if executor is None:
            executor = stack.enter_context(LocalExecutor())
        if cfg.selection is not None:
            selected = _run_selection(cfg, inputs, run_dir, executor, device=device, progress=progress)
            plan = make_plan(cfg, selected, inputs)
        return _run_owned(cfg, plan, run_dir, t0, executor=executor, device=device, progress=progress,
                          schedule=schedule)


def _run_selection(cfg: ExperimentConfig, inputs: PlanInputs, run_dir: Path, executor: Executor, *,
                   device: str | None, progress: bool) -> "dict[tuple[str, ...], Selected]":
    """Choose the fused set on the probe tasks, in rounds of ordinary jobs; write RUN/selection.json."""
    from basefuse.experiments.selection import select, write_selection

    assert cfg.selection is not None
    metric = cfg.selection.metric

    def run_round(plan: Plan) -> None:
        outcome = _run_graph(plan, run_dir, executor, device=device, progress=progress, results_file=False)
        raise_if_failed(outcome.failures, "selection", run_dir)

    def read_score(key: str) -> float:
        return float(JobStore(run_dir / "store.jsonl").get(key)[metric])

    selected, record = select(cfg, inputs.facts, inputs.base_ref, inputs.checkpoints, run_round, read_score)
    write_selection(run_dir, record)
    return selected


def _undo_new_run_dir(run_dir: Path, created: bool, had_lock: bool) -> None:
    """A refused config leaves nothing: the lock this run added (removed while still held, so no other process
    can take it meanwhile) and the folder, if this run made it and nothing else is in it."""
    if not had_lock:
        (run_dir / LOCK_NAME).unlink(missing_ok=True)
    if created:
        with contextlib.suppress(OSError):
            run_dir.rmdir()


def _run_owned(cfg: ExperimentConfig, plan: Plan, run_dir: Path, t0: float, *, executor: Executor,
               device: str | None, progress: bool, schedule: Schedule) -> RunSummary:
    write_plan(run_dir, plan)
    write_leakage(run_dir, plan.leakage)
    outcome = _run_graph(plan, run_dir, executor, device=device, progress=progress, schedule=schedule)
    records = records_from(plan, JobStore(run_dir / "store.jsonl"))
    return RunSummary(run_dir=run_dir, jobs_total=len(plan.jobs), jobs_executed=outcome.executed,
                      jobs_reused=outcome.reused, wall_s=time.perf_counter() - t0, records=records,
                      failures=outcome.failures)
