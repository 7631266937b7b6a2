"""Leakage checked by content, through every finetune and fusion: pure functions over the job graph.

A target's test rows must never have been trained on by the base it is finetuned from. Names
cannot prove that (the same file can be listed twice under two names), so:

- every task is identified by a fingerprint of its rows (`basefuse.data.content`), and two tasks
  with one fingerprint are refused;
- every job carries its *provenance*, the task names whose training data went into its output
  (a finetune: its task plus its start model's; a fusion: the union of its inputs'), and no target
  may be finetuned from a base whose provenance holds the target or a task with the target's content;
- for every (target, base) pair the target's normalised test texts are looked up in the data of
  every task in the base's provenance; the table is written to `RUN/leakage.json` and a share above
  `leakage.max_test_overlap` refuses the run.

What a source finetune "saw" is counted conservatively: its whole train split before any budget
subsample, plus its validation split (used for early stopping), whatever the budget.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from basefuse.errors import BasefuseError
from basefuse.experiments.jobs import Job

if TYPE_CHECKING:
    from basefuse.data.task import Task

LEAKAGE_FILE = "leakage.json"


class LeakageError(BasefuseError):
    """A plan would finetune a target from a base that has seen the target's data."""


@dataclass(frozen=True)
class TaskContent:
    """What the leakage check needs of one task (loaded without a train budget)."""

    fingerprint: str  # of all its rows, see `content_fingerprint`
    test: tuple[str, ...]  # normalised test texts, one per test row
    seen: frozenset[str]  # normalised texts a finetune on it may read: full train + validation


def task_content(task: "Task") -> TaskContent:
    """Content of a task loaded with `max_train=None` (so `train` is the whole train split)."""
    from basefuse.data.content import content_fingerprint, normalised_rows, row_text

    rows = normalised_rows(task)
    return TaskContent(fingerprint=content_fingerprint(task, rows), test=tuple(map(row_text, rows["test"])),
                       seen=frozenset(map(row_text, rows["train"] + rows["validation"])))


def check_distinct_content(contents: Mapping[str, TaskContent]) -> None:
    """The same rows under two task names would let a target's data in under the other name."""
    first: dict[str, str] = {}
    for name, c in contents.items():
        if c.fingerprint in first:
            raise LeakageError(f"tasks {first[c.fingerprint]!r} and {name!r} hold the same data (same rows, "
                               f"content fingerprint {c.fingerprint[:12]}): list it once")
        first[c.fingerprint] = name


# ---- provenance ----------------------------------------------------------------------------

def job_inputs(job: Job) -> list[str]:
    """Keys of the jobs whose output this job reads: its deps and every job named in its model references."""
    refs: list[Any] = [job.params.get("model"), job.params.get("base"), *job.params.get("sources", [])]
    named = [r["job"] for r in refs if isinstance(r, dict) and "job" in r]
    return list(dict.fromkeys([*job.deps, *named]))


def own_task(job: Job) -> str | None:
    """The task whose training data a job adds itself (a finetune's task; a fusion adds none)."""
    task = job.params.get("task")
    return task.get("name") if job.kind == "finetune" and isinstance(task, dict) else None


def provenance(jobs: Mapping[str, Job]) -> dict[str, frozenset[str]]:
    """For every job, the task names whose training data went into its output, through any depth."""
    out: dict[str, frozenset[str]] = {}

    def visit(key: str, stack: tuple[str, ...]) -> frozenset[str]:
        if key in out:
            return out[key]
        if key not in jobs:
            raise LeakageError(f"job {jobs[stack[-1]].label!r} reads the output of job {key}, which is not in the "
                               "plan: provenance cannot be proven")
        if key in stack:  # keys hash their inputs, so a cycle means a hand-built, broken graph
            raise LeakageError(f"job {jobs[key].label!r} depends on itself")
        job = jobs[key]
        names = {n for dep in job_inputs(job) for n in visit(dep, stack + (key,))}
        if own_task(job):
            names.add(own_task(job))
        out[key] = frozenset(names)
        return out[key]

    for key in jobs:
        visit(key, ())
    return out


def leak_path(jobs: Mapping[str, Job], prov: Mapping[str, frozenset[str]], key: str, task: str) -> list[str]:
    """Labels of the jobs from `key` down to a finetune on `task`: how the task's data got in."""
    path = [jobs[key].label]
    while own_task(jobs[key]) != task:
        key = next(d for d in job_inputs(jobs[key]) if task in prov[d])
        path.append(jobs[key].label)
    return path


@dataclass(frozen=True)
class TargetRun:
    """A target finetune as the check sees it: the target, its job, and the row label of its base.

    `may_see_target`: the base may have trained on the target's own task (its train and validation splits), as
    in ColD Fusion's "seen" setting; the provenance rule then lets the target's task in, while the overlap check
    still counts its test texts in every task of the base's provenance, the target's own included."""

    target: str
    job_key: str
    base_label: str
    may_see_target: bool = False


def _forbidden(target: str, contents: Mapping[str, TaskContent]) -> set[str]:
    """The target, and every task with the target's content (caught by name or by rows)."""
    if target not in contents:
        return {target}
    fp = contents[target].fingerprint
    return {target} | {n for n, c in contents.items() if c.fingerprint == fp}


def check_provenance(jobs: Mapping[str, Job], runs: Iterable[TargetRun],
                     contents: Mapping[str, TaskContent] | None = None) -> dict[str, frozenset[str]]:
    """No target is finetuned from a base whose provenance holds it (by name or by content); returns provenance."""
    prov = provenance(jobs)
    contents = contents or {}
    for run in runs:
        if run.may_see_target:  # a seen-setting row: its test texts are guarded by the overlap check alone
            continue
        job = jobs[run.job_key]
        for dep in job_inputs(job):
            bad = sorted(prov[dep] & _forbidden(run.target, contents))
            if bad:
                path = " <- ".join(leak_path(jobs, prov, dep, bad[0]))
                same = "" if bad[0] == run.target else f" (task {bad[0]!r} holds the same data)"
                raise LeakageError(f"leakage: target {run.target!r} would be finetuned from base {run.base_label!r}, "
                                   f"which was trained on {bad[0]!r}{same}: {path}")
    return prov


# ---- overlap by content ------------------------------------------------------------------------

def overlap_table(jobs: Mapping[str, Job], runs: Iterable[TargetRun], contents: Mapping[str, TaskContent],
                  prov: Mapping[str, frozenset[str]], max_test_overlap: float) -> dict[str, Any]:
    """For every (target, base) pair: how many of the target's test rows occur in the base's training data.

    A JSON-ready dict; `rows` has one entry per distinct (target, base), with the count per source task.
    """
    from basefuse.data.content import NORMALISATION

    rows: dict[tuple[str, str], dict[str, Any]] = {}
    hits: dict[tuple[str, str], frozenset[int]] = {}  # (target, source) -> indices of its test rows the source saw

    def seen_by(target: str, source: str) -> frozenset[int]:
        if (target, source) not in hits:
            seen = contents[source].seen
            hits[(target, source)] = frozenset(i for i, t in enumerate(contents[target].test) if t in seen)
        return hits[(target, source)]

    for run in runs:
        if run.target not in contents:
            continue
        bases = job_inputs(jobs[run.job_key])
        names = sorted({n for d in bases for n in prov[d]})
        if not names or (run.target, bases[0]) in rows:
            continue
        by_source = {n: seen_by(run.target, n) for n in names if n in contents}
        n_test, overlap = len(contents[run.target].test), len(frozenset().union(*by_source.values()))
        rows[(run.target, bases[0])] = {
            "target": run.target, "base": run.base_label, "base_job": bases[0], "n_test": n_test,
            "overlap": overlap, "fraction": overlap / n_test if n_test else 0.0,
            "by_source": {n: len(h) for n, h in by_source.items() if h}, "provenance": names}
    return {"normalisation": NORMALISATION, "max_test_overlap": max_test_overlap,
            "source_rows_counted": "full train split (before any budget) + validation split",
            "task_fingerprints": {n: c.fingerprint for n, c in sorted(contents.items())},
            "rows": list(rows.values())}


def check_overlap(table: Mapping[str, Any]) -> None:
    """Refuse the run if any base has seen more than the allowed share of a target's test texts."""
    limit = table["max_test_overlap"]
    for row in table["rows"]:
        if row["fraction"] > limit:
            worst = ", ".join(f"{n!r}: {c}" for n, c in sorted(row["by_source"].items(), key=lambda kv: -kv[1]))
            raise LeakageError(
                f"leakage: {row['overlap']} of the {row['n_test']} test texts of target {row['target']!r} "
                f"({row['fraction']:.1%}) occur in the training data of base {row['base']!r} (from {worst}), above "
                f"leakage.max_test_overlap={limit:g}: remove those rows from the source or raise the threshold")


def write_leakage(run_dir: str | Path, table: Mapping[str, Any]) -> Path:
    """Write the overlap table into the run directory, atomically."""
    from basefuse.io import write_json

    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / LEAKAGE_FILE, dict(table))
    except OSError as e:
        raise BasefuseError(f"cannot write {run_dir / LEAKAGE_FILE}: {e.strerror or e}; choose a writable --out") \
            from None
    return run_dir / LEAKAGE_FILE
