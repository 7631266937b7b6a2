"""Jobs described by data only, keyed by a hash of that description, and how to execute one.

A job's key covers everything that decides its output: its kind, parameters and the
fingerprints of its inputs (a base model's weights, a task's data and split recipe, or
the keys of the jobs it builds on). The same key therefore always means the same work,
which is what makes resuming and sharing results across runs safe.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from basefuse.errors import BasefuseError
from basefuse.experiments.locate import LOCATION_KEYS

JobKind = Literal["finetune", "fuse", "checkpoint", "probe"]


@dataclass(frozen=True)
class Job:
    kind: JobKind
    label: str  # human-readable, for progress and errors; not part of the key
    params: dict[str, Any]
    deps: tuple[str, ...] = ()
    key: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "params": self.params, "deps": list(self.deps),
                "key": self.key}


def _content_view(obj: Any) -> Any:
    """What decides a job's output: a model reference with a fingerprint is that fingerprint, not where it is
    (moving the cache, spelling a path differently or fetching it on another node must not redo finished work)."""
    if isinstance(obj, dict):
        return {k: _content_view(v) for k, v in obj.items() if not (k in LOCATION_KEYS and "fingerprint" in obj)}
    if isinstance(obj, list):
        return [_content_view(v) for v in obj]
    return obj


def job_key(kind: JobKind, params: dict[str, Any]) -> str:
    blob = json.dumps({"kind": kind, "params": _content_view(params)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def make_job(kind: JobKind, label: str, params: dict[str, Any], deps: tuple[str, ...] = ()) -> Job:
    return Job(kind=kind, label=label, params=params, deps=tuple(deps), key=job_key(kind, params))


# ---- the kinds of job: how each runs, where its output and model are, what the store keeps -----

def job_dir(run_dir: Path, key: str) -> Path:
    return Path(run_dir) / "jobs" / key


def _run_finetune(params: dict[str, Any], out: Path, run_dir: Path, device: str | None,
                  threads: int | None) -> dict[str, Any]:
    from basefuse.data.api import load_task
    from basefuse.finetuning.api import finetune
    from basefuse.finetuning.config import FinetuneConfig

    t = params["task"]
    task = load_task(t["spec"], max_train=params.get("max_train"), text_col=t["text_col"],
                     label_col=t["label_col"], pair_col=t.get("pair_col"), family=t.get("family"))
    check_planned_data(t, task.fingerprint)
    return finetune(model_path_of(run_dir, params["model"]), task, config=FinetuneConfig(**params["hparams"]),
                    seed=params["seed"], out=out, save=bool(params.get("save")), device=device, threads=threads,
                    progress=False, force=True)


def _run_probe(params: dict[str, Any], out: Path, run_dir: Path, device: str | None,
               threads: int | None) -> dict[str, Any]:
    """A linear probe of a base on a target: params as a finetune's ("model", "task" with its planned
    "fingerprint" at the budget "max_train", "seed"), "hparams" a ProbeConfig's dump. The task is checked at its
    budget like a finetune's; the seed then draws the probe's training examples from the whole train split, whose
    fingerprint is checked too when the plan gives one (task "pool_fingerprint")."""
    from basefuse.probing.config import ProbeConfig
    from basefuse.probing.probe import linear_probe, probe_task

    t = params["task"]
    loaded = probe_task(t["spec"], params.get("max_train"), text_col=t["text_col"], label_col=t["label_col"],
                        pair_col=t.get("pair_col"), family=t.get("family"))
    check_planned_data(t, loaded.fingerprint)
    if t.get("pool_fingerprint"):
        check_planned_data({**t, "fingerprint": t["pool_fingerprint"]}, loaded.pool.fingerprint)
    return linear_probe(model_path_of(run_dir, params["model"]), loaded, config=ProbeConfig(**params["hparams"]),
                        seed=params["seed"], max_train=params.get("max_train"), out=out, device=device,
                        threads=threads, force=True)


def check_planned_data(task_params: dict[str, Any], loaded: str) -> None:
    """The data a finetune loads must be the data its key (and the leakage check) was planned with: a file
    replaced after planning would train on rows nobody checked, under a key that describes others."""
    planned = task_params.get("fingerprint")
    if planned and loaded != planned:
        raise BasefuseError(f"task {task_params.get('name', '?')}: its data ({task_params.get('spec')}) changed "
                            f"after the run was planned (fingerprint {loaded[:12]}, planned {planned[:12]}): "
                            "restore it, or rerun `basefuse experiment` to plan (and check) the new data")


def _recorded_data_matches(out: Path, params: dict[str, Any]) -> bool:
    """A finished finetune counts as done only if it recorded the data fingerprint its key was planned with."""
    task = params.get("task")
    planned = task.get("fingerprint") if isinstance(task, dict) else None
    if not planned:  # a job described without one (hand-made plans)
        return True
    try:
        recorded = json.loads((out / "metrics.json").read_text(encoding="utf-8")).get("task_fingerprint")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False
    return recorded == planned


def _run_fuse(params: dict[str, Any], out: Path, run_dir: Path, device: str | None,
              threads: int | None) -> dict[str, Any]:
    from basefuse.fusion.api import fuse

    # The sources are this plan's own finetunes of the base: one that trained longer (early stopping) is far from
    # the others' median by design, so only the absolute distance rule applies (and `allow_unrelated` lifts it).
    sources = [model_path_of(run_dir, ref) for ref in params["sources"]]
    data = dict(zip(sources, params["data"])) if "data" in params else None  # fisher, regmean: each one's task
    return fuse(sources, out,
                base=model_path_of(run_dir, params["base"]), method=params["method"], force=True, progress=False,
                allow_unrelated=bool(params.get("allow_unrelated")), flag_outliers=False, data=data,
                **params.get("method_params", {}))


def _run_checkpoint(params: dict[str, Any], out: Path, run_dir: Path, device: str | None,
                    threads: int | None) -> dict[str, Any]:
    """A pool checkpoint is not made here: check that its weights are the ones planned (where this job runs), and
    record that, so a checkpoint edited after planning is never used under a key that describes other weights."""
    from basefuse.io import atomic_output_dir, write_json

    from basefuse.experiments.locate import locate

    path = locate(params)  # a hub checkpoint absent here is fetched at its planned commit into this node's cache
    found = check_checkpoint(path, params["fingerprint"], params["name"])
    record = {"name": params["name"], "model": path, "fingerprint": found,
              "trained_on": params["trained_on"]}
    with atomic_output_dir(out, force=True) as tmp:
        write_json(tmp / "checkpoint.json", record)
    return record


def check_checkpoint(path: str, planned: str, name: str | None = None) -> str:
    """A pool checkpoint's weights must be the planned ones wherever a job reads them (its own job, and every job
    using it, e.g. after an edit between selection rounds); returns their fingerprint."""
    from basefuse.finetuning.api import base_fingerprint

    found = base_fingerprint(path)  # hashed once per (file, size, mtime) in a process
    if found != planned:
        who = f"checkpoint {name!r} ({path})" if name else f"model {path}"
        raise BasefuseError(f"{who}: its weights changed after the run was planned (fingerprint {found[:19]}, "
                            f"planned {planned[:19]}): restore them, or rerun `basefuse experiment` to plan with the "
                            "new weights")
    return found


def summarise_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few numbers the store keeps of a finetune: test accuracy and macro-F1, and its wall time."""
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else metrics
    return {"accuracy": float(test["accuracy"]), "macro_f1": float(test["macro_f1"]),
            "wall_s": metrics.get("wall_time_s", metrics.get("wall_s"))}


def _summarise_fusion(manifest: dict[str, Any]) -> dict[str, Any]:
    return {"n_sources": len(manifest.get("sources", [])), "method": manifest.get("method"),
            "n_dropped": len(manifest.get("dropped_keys", []))}


@dataclass(frozen=True)
class KindSpec:
    """Everything the runner needs to know of one kind of job; nothing else asks a job its kind."""

    run: Callable[..., dict[str, Any]]  # (params, out, run_dir, device, threads) -> its output's record
    record_file: str  # written last into the output folder: the output is complete once it is there
    model_dir: str  # where the job's model is inside its folder ("" = the folder itself)
    summarise: Callable[[dict[str, Any]], dict[str, Any]]  # output's record -> the small result the store keeps
    verify: Callable[[Path, dict[str, Any]], bool] | None = None  # (out, params) -> the output is of these inputs

    def complete(self, out: Path, params: dict[str, Any]) -> bool:
        """An output folder only exists once it was renamed into place whole; a saved model must be in it."""
        if not (out / self.record_file).exists():
            return False
        if self.verify is not None and not self.verify(out, params):
            return False
        return not params.get("save") or (out / self.model_dir / "config.json").exists()


KINDS: dict[str, KindSpec] = {
    "finetune": KindSpec(run=_run_finetune, record_file="metrics.json", model_dir="model",
                         summarise=summarise_metrics, verify=_recorded_data_matches),
    "probe": KindSpec(run=_run_probe, record_file="metrics.json", model_dir="", summarise=summarise_metrics,
                      verify=_recorded_data_matches),
    "fuse": KindSpec(run=_run_fuse, record_file="fusion.json", model_dir="", summarise=_summarise_fusion),
    "checkpoint": KindSpec(run=_run_checkpoint, record_file="checkpoint.json", model_dir="",
                           summarise=lambda r: {"checkpoint": r["name"], "fingerprint": r["fingerprint"]}),
}


def model_path_of(run_dir: Path, ref: dict[str, str]) -> str:
    """Resolve a model reference of a job: the base model or a pool checkpoint (where it is), or the model a job
    made."""
    if "base" in ref:
        from basefuse.experiments.locate import locate

        path = locate(ref)  # the recorded folder, or the same model fetched into this node's cache
        # a checkpoint is read where it is, a base fetched here is new: its weights must be the planned ones
        if ref.get("fingerprint") and (ref.get("kind") == "checkpoint" or path != ref["base"]):
            check_checkpoint(path, ref["fingerprint"])
        return path
    out = job_dir(run_dir, ref["job"])
    sub = KINDS[ref.get("kind", "finetune")].model_dir
    return str(out / sub) if sub else str(out)


def output_complete(run_dir: Path, job: Job) -> bool:
    return KINDS[job.kind].complete(job_dir(run_dir, job.key), job.params)


def read_result(run_dir: Path, job: Job) -> dict[str, Any]:
    """The job's output record (metrics.json, fusion.json), as it wrote it."""
    return json.loads((job_dir(run_dir, job.key) / KINDS[job.kind].record_file).read_text(encoding="utf-8"))


def recovered_result(run_dir: Path, job: Job) -> dict[str, Any]:
    """The store's result of a job that finished but was not recorded (a crash between the two)."""
    return KINDS[job.kind].summarise(read_result(run_dir, job)) | {"recovered": True}


# ---- execution (runs in whatever process the executor chooses) ----------------------------

def execute_job(job: dict[str, Any], run_dir: str, device: str | None = None,
                threads: int | None = None) -> dict[str, Any]:
    """Run one job from its data description and return the small summary the store keeps.

    Module-level and argument-only so that process pools and Ray can ship it.
    """
    kind = KINDS.get(job["kind"])
    if kind is None:
        raise ValueError(f"unknown job kind {job['kind']!r}")
    out = job_dir(Path(run_dir), job["key"])
    out.parent.mkdir(parents=True, exist_ok=True)
    return kind.summarise(kind.run(job["params"], out, Path(run_dir), device, threads))
