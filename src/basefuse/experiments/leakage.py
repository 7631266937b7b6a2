"""Leakage checked by content, through every finetune and fusion: pure functions over the job graph.

A target's test rows must never have been trained on by the base it is finetuned from. Names
cannot prove that (the same file can be listed twice under two names), so:

- every task is identified by a fingerprint of its rows (`basefuse.data.content`), and two tasks
  with one fingerprint are refused;
- every job carries its *provenance*, the task names whose training data went into its output
  (a finetune: its task plus its start model's; a fusion: the union of its inputs'), and no target
  may be finetuned from a base whose provenance holds the target or a task with the target's content;
- for every (target, base) pair the target's test texts are looked up in the data of every task in the
  base's provenance, exactly (in two views: `basefuse.data.content`'s normalisation, and the base
  tokenizer's own, `basefuse.data.model_view`, so texts the model cannot tell apart are one text) and as
  near-duplicates (`basefuse.data.near_dup`); the table is written to `RUN/leakage.json`, and a share above
  `leakage.max_test_overlap` (exact) or `leakage.max_near_duplicate_overlap` (near) refuses the run;
- the experiment's base model itself: one that basefuse made (a finetune's metrics.json, a fusion's
  fusion.json) carries what it was trained on into the check (`basefuse.experiments.base_provenance`);
  any other is recorded as "provenance unknown".

What a source finetune "saw" is counted conservatively: its whole train split before any budget
subsample, plus its validation split (used for early stopping), whatever the budget.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from basefuse.errors import BasefuseError
from basefuse.experiments.jobs import Job

if TYPE_CHECKING:
    from basefuse.data.model_view import ModelView
    from basefuse.data.near_dup import NearIndex
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
    model_fingerprint: str | None = None  # of all its rows as the base tokenizer sees them (None: no tokenizer)
    test_model: tuple[str, ...] = ()  # test texts as the base tokenizer sees them
    seen_model: frozenset[str] = frozenset()
    test_near: "NearIndex | None" = None  # near-duplicate views (None: not compared by near-duplicates)
    seen_near: "NearIndex | None" = None
    view: str | None = None  # the tokenizer view's name


def task_content(task: "Task", view: "ModelView | None" = None) -> TaskContent:
    """Content of a task loaded with `max_train=None` (so `train` is the whole train split).

    Every text is put in each view once, and the views are cached by the task's fingerprint
    (`basefuse.experiments.leakage_cache`); `view`: the base model's tokenizer (None: normalisation only).
    """
    from basefuse.experiments import leakage_cache

    if not task.fingerprint:  # a task built by hand: nothing identifies its rows for a cache
        return _compute_content(task, view)
    key = leakage_cache.cache_key(task.fingerprint, view.ident if view is not None else None)
    content = leakage_cache.load(key)
    if content is None:
        content = _compute_content(task, view)
        leakage_cache.save(key, content)
    return content


def _compute_content(task: "Task", view: "ModelView | None") -> TaskContent:
    from basefuse.data.content import content_fingerprint, row_text, split_rows, view_rows
    from basefuse.data.near_dup import build_index

    raw = split_rows(task)
    rows = view_rows(raw)
    seen_raw = raw["train"] + raw["validation"]
    model: dict[str, Any] = {}
    if view is not None:
        texts = list({p for split in raw.values() for parts, _ in split for p in parts})
        keys = dict(zip(texts, view.keys(texts)))
        mrows = view_rows(raw, keys.__getitem__)  # each distinct text viewed once
        model = {"model_fingerprint": content_fingerprint(task, mrows, scheme=view.ident),
                 "test_model": tuple(map(row_text, mrows["test"])),
                 "seen_model": frozenset(map(row_text, mrows["train"] + mrows["validation"])), "view": view.name}
    return TaskContent(fingerprint=content_fingerprint(task, rows), test=tuple(map(row_text, rows["test"])),
                       seen=frozenset(map(row_text, rows["train"] + rows["validation"])),
                       test_near=build_index([p for p, _ in raw["test"]]),
                       seen_near=build_index([p for p, _ in seen_raw]), **model)


def content_fingerprints(c: TaskContent) -> list[str]:
    return [c.fingerprint] + ([c.model_fingerprint] if c.model_fingerprint else [])


def check_distinct_content(contents: Mapping[str, TaskContent]) -> None:
    """The same rows under two task names would let a target's data in under the other name."""
    first: dict[str, str] = {}
    for name, c in contents.items():
        for fp in content_fingerprints(c):
            if fp in first and first[fp] != name:
                how = "" if fp == c.fingerprint else ", as the base model's tokenizer sees them"
                raise LeakageError(f"tasks {first[fp]!r} and {name!r} hold the same data (same rows{how}, "
                                   f"content fingerprint {fp[:12]}): list it once")
            first[fp] = name


# ---- provenance ----------------------------------------------------------------------------

def job_inputs(job: Job) -> list[str]:
    """Keys of the jobs whose output this job reads: its deps and every job named in its model references."""
    refs: list[Any] = [job.params.get("model"), job.params.get("base"), *job.params.get("sources", [])]
    named = [r["job"] for r in refs if isinstance(r, dict) and "job" in r]
    return list(dict.fromkeys([*job.deps, *named]))


def own_tasks(job: Job) -> frozenset[str]:
    """The tasks whose training data a job adds itself: a finetune's task, the tasks a pool checkpoint declares;
    a fusion adds none."""
    task = job.params.get("task")
    if job.kind == "finetune" and isinstance(task, dict):
        return frozenset({task["name"]})
    declared = job.params.get("trained_on")
    if job.kind == "checkpoint" and isinstance(declared, list):
        return frozenset(t["name"] for t in declared)
    return frozenset()


def unknown_checkpoints(jobs: Mapping[str, Job], key: str) -> list[str]:
    """Names of the pool checkpoints of unknown provenance in a job's output, through any depth."""
    found, stack, seen = set(), [key], set()
    while stack:
        k = stack.pop()
        if k in seen:
            continue
        seen.add(k)
        job = jobs[k]
        if job.kind == "checkpoint" and job.params.get("trained_on") == "unknown":
            found.add(job.params["name"])
        stack.extend(job_inputs(job))
    return sorted(found)


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
        names = {n for dep in job_inputs(job) for n in visit(dep, stack + (key,))} | own_tasks(job)
        out[key] = frozenset(names)
        return out[key]

    for key in jobs:
        visit(key, ())
    return out


def leak_path(jobs: Mapping[str, Job], prov: Mapping[str, frozenset[str]], key: str, task: str) -> list[str]:
    """Labels of the jobs from `key` down to a finetune on `task`: how the task's data got in."""
    path = [jobs[key].label]
    while task not in own_tasks(jobs[key]):
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


# ---- the base model's own provenance ---------------------------------------------------------------

@dataclass(frozen=True)
class BaseModelFacts:
    """The experiment's base model as the check sees it (see `basefuse.experiments.base_provenance`)."""

    record: dict[str, Any]  # BaseRecord.to_json(): spec, "made by basefuse" or "provenance unknown", trained_on
    contents: Mapping[str, TaskContent] = field(default_factory=dict)  # its tasks' content, where loadable
    # target -> its loader fingerprints at every budget a record in the base's history names
    loader_fingerprints: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return self.record.get("provenance") == "made by basefuse"

    def label(self, task: str) -> str:
        return f"{task} (in base model)"


def unknown_base(spec: str = "?") -> BaseModelFacts:
    return BaseModelFacts({"spec": spec, "provenance": "provenance unknown", "trained_on": []})


def check_base_model(base: BaseModelFacts, targets: Iterable[str], contents: Mapping[str, TaskContent]) -> None:
    """Refuse a base model that basefuse trained on a target's data (same loader fingerprint, or same content)."""
    for target in dict.fromkeys(targets):
        fps = base.loader_fingerprints.get(target, frozenset())
        mine = set(content_fingerprints(contents[target])) if target in contents else set()
        for t in base.record.get("trained_on", []):
            label = base.label(t["task"])
            same = t.get("task_fingerprint") in fps or (label in base.contents
                                                       and mine & set(content_fingerprints(base.contents[label])))
            if same:
                raise LeakageError(f"leakage: base model {base.record['spec']!r} was finetuned on task "
                                   f"{t['task']!r} ({t['record']}), which holds the data of target {target!r}: "
                                   f"use a base not trained on it, or drop {target!r} from targets")


# ---- overlap by content ------------------------------------------------------------------------

DEFAULT_JACCARD = 0.8


def exact_hits(target: TaskContent, source: TaskContent) -> frozenset[int]:
    """Indices of the target's test rows the source saw, normalised or as the base tokenizer sees them."""
    both = bool(target.test_model) and source.model_fingerprint is not None
    return frozenset(i for i, t in enumerate(target.test)
                     if t in source.seen or (both and target.test_model[i] in source.seen_model))


def near_hits_of(target: TaskContent, source: TaskContent, jaccard: float) -> frozenset[int]:
    """Indices of the target's test rows with a near-duplicate in what the source saw (exact copies included)."""
    from basefuse.data.near_dup import near_hits

    if target.test_near is None or source.seen_near is None:
        return frozenset()
    return near_hits(target.test_near, source.seen_near, jaccard)


def overlap_table(jobs: Mapping[str, Job], runs: Iterable[TargetRun], contents: Mapping[str, TaskContent],
                  prov: Mapping[str, frozenset[str]], max_test_overlap: float, *,
                  max_near_overlap: float | None = None, jaccard: float = DEFAULT_JACCARD,
                  base_model: BaseModelFacts | None = None) -> dict[str, Any]:
    """For every (target, base) pair: how many of the target's test rows occur in the base's training data
    exactly, and how many others as near-duplicates only (each test row counts once, exact first).

    A JSON-ready dict; `rows` has one entry per distinct (target, base), with the count per source task. The
    tasks a basefuse-made base model was trained on count in every row (and add rows for `pretrained`).
    """
    from basefuse.data.content import NORMALISATION
    from basefuse.data.near_dup import METHOD

    base_model = base_model or unknown_base()
    every = {**contents, **base_model.contents}
    max_near = max_test_overlap if max_near_overlap is None else max_near_overlap
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    hits: dict[tuple[str, str], tuple[frozenset[int], frozenset[int]]] = {}  # (target, source) -> exact, near

    def seen_by(target: str, source: str) -> tuple[frozenset[int], frozenset[int]]:
        if (target, source) not in hits:
            t, s = every[target], every[source]
            hits[(target, source)] = (exact_hits(t, s), near_hits_of(t, s, jaccard))
        return hits[(target, source)]

    provenance_of_base = "made by basefuse" if base_model.known else "provenance unknown"
    for run in runs:
        if run.target not in contents:
            continue
        bases = job_inputs(jobs[run.job_key])
        names = sorted({n for d in bases for n in prov[d]}) + sorted(base_model.contents)
        key = (run.target, bases[0] if bases else "")
        if key in rows:
            continue
        unknown = sorted({n for d in bases for n in unknown_checkpoints(jobs, d)})
        if not names and not unknown:
            continue
        by_source = {n: seen_by(run.target, n) for n in names if n in every}
        n_test = len(contents[run.target].test)
        exact = frozenset().union(*(e for e, _ in by_source.values()))
        near = frozenset().union(*(n for _, n in by_source.values())) - exact  # counted once: as exact copies
        rows[key] = {
            "target": run.target, "base": run.base_label, "base_job": bases[0] if bases else None, "n_test": n_test,
            "overlap": len(exact), "fraction": len(exact) / n_test if n_test else 0.0,
            "by_source": {n: len(e) for n, (e, _) in by_source.items() if e},
            "near_overlap": len(near), "near_fraction": len(near) / n_test if n_test else 0.0,
            "near_by_source": {n: len(h - exact) for n, (_, h) in by_source.items() if h - exact},
            "provenance": names, "base_model_provenance": provenance_of_base}
        if unknown:  # what these were trained on is not declared: nothing proves the target is not in them
            rows[key]["provenance_unknown"] = unknown
    views = sorted({c.view for c in contents.values() if c.view})
    return {"normalisation": NORMALISATION, "model_view": views[0] if views else None,
            "max_test_overlap": max_test_overlap,
            "near_duplicate_method": METHOD, "near_duplicate_jaccard": jaccard,
            "max_near_duplicate_overlap": max_near,
            "source_rows_counted": "full train split (before any budget) + validation split",
            "base_model": base_model.record,
            "task_fingerprints": {n: c.fingerprint for n, c in sorted(contents.items())},
            "rows": list(rows.values())}


def _worst(by_source: Mapping[str, int]) -> str:
    return ", ".join(f"{n!r}: {c}" for n, c in sorted(by_source.items(), key=lambda kv: -kv[1]))


def check_overlap(table: Mapping[str, Any]) -> None:
    """Refuse the run if any base has seen more than the allowed share of a target's test texts, exactly or
    as near-duplicates."""
    limit = table["max_test_overlap"]
    near_limit = table.get("max_near_duplicate_overlap", 1.0)
    for row in table["rows"]:
        if row["fraction"] > limit:
            raise LeakageError(
                f"leakage: {row['overlap']} of the {row['n_test']} test texts of target {row['target']!r} "
                f"({row['fraction']:.1%}) occur in the training data of base {row['base']!r} (from "
                f"{_worst(row['by_source'])}), above leakage.max_test_overlap={limit:g}: remove those rows from "
                "the source or raise the threshold")
    for row in table["rows"]:
        if row.get("near_fraction", 0.0) > near_limit:
            raise LeakageError(
                f"leakage: {row['near_overlap']} of the {row['n_test']} test texts of target {row['target']!r} "
                f"({row['near_fraction']:.1%}) have a near-duplicate, not an exact copy, (word-bigram Jaccard >= "
                f"{table.get('near_duplicate_jaccard', DEFAULT_JACCARD):g}, or the same words in any order) in "
                f"the training data of base {row['base']!r} (from {_worst(row['near_by_source'])}), above "
                f"leakage.max_near_duplicate_overlap={near_limit:g}: remove those rows from the source or raise "
                "the threshold")


def largest_per_target(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per target, the row with the largest near-duplicate share (ties: the larger exact share): for the dry run."""
    best: dict[str, dict[str, Any]] = {}
    for row in table["rows"]:
        key = (row.get("near_fraction", 0.0), row["fraction"])
        old = best.get(row["target"])
        if old is None or key > (old.get("near_fraction", 0.0), old["fraction"]):
            best[row["target"]] = row
    return [best[t] for t in sorted(best)]


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


def write_dry_run_leakage(out: str | Path, table: Mapping[str, Any]) -> Path | None:
    """A dry run's overlap table goes only into a folder no run owns: `out` new, empty, or holding only an earlier
    dry run's table; None (nothing written) for anything else, e.g. a finished or running run's folder."""
    from basefuse.experiments.rundir import LOCK_NAME, own_run_dir

    out = Path(out)
    try:
        if out.exists() and (not out.is_dir() or any(p.name not in (LOCK_NAME, LEAKAGE_FILE) for p in out.iterdir())):
            return None
        out.mkdir(parents=True, exist_ok=True)
        with own_run_dir(out):  # a run that just took the folder holds its lock: leave it alone
            if any(p.name not in (LOCK_NAME, LEAKAGE_FILE) for p in out.iterdir()):
                return None
            return write_leakage(out, table)
    except BasefuseError:
        return None
    except OSError as e:
        raise BasefuseError(f"cannot write {out / LEAKAGE_FILE}: {e.strerror or e}; choose a writable --out") \
            from None
