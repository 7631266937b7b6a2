"""Jobs described by data only, keyed by a hash of that description, and how to execute one.

A job's key covers everything that decides its output: its kind, parameters and the
fingerprints of its inputs (a base model's weights, a task's data and split recipe, or
the keys of the jobs it builds on). The same key therefore always means the same work,
which is what makes resuming and sharing results across runs safe.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

JobKind = Literal["finetune", "fuse"]


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
    """What decides a job's output: a model reference with a fingerprint is that fingerprint, not its path
    (moving the cache or spelling a path differently must not redo finished work)."""
    if isinstance(obj, dict):
        return {k: _content_view(v) for k, v in obj.items() if not (k == "base" and "fingerprint" in obj)}
    if isinstance(obj, list):
        return [_content_view(v) for v in obj]
    return obj


def job_key(kind: JobKind, params: dict[str, Any]) -> str:
    blob = json.dumps({"kind": kind, "params": _content_view(params)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def make_job(kind: JobKind, label: str, params: dict[str, Any], deps: tuple[str, ...] = ()) -> Job:
    return Job(kind=kind, label=label, params=params, deps=tuple(deps), key=job_key(kind, params))


# ---- where outputs live ------------------------------------------------------------------

def job_dir(run_dir: Path, key: str) -> Path:
    return Path(run_dir) / "jobs" / key


def model_path_of(run_dir: Path, ref: dict[str, str]) -> str:
    """Resolve a model reference of a job: the base model, a saved finetune, or a fused model."""
    if "base" in ref:
        return ref["base"]
    if ref.get("kind") == "fuse":
        return str(job_dir(run_dir, ref["job"]))
    return str(job_dir(run_dir, ref["job"]) / "model")


def output_complete(run_dir: Path, job: Job) -> bool:
    """A job's output folder only exists once it was renamed into place whole."""
    d = job_dir(run_dir, job.key)
    if job.kind == "fuse":
        return (d / "fusion.json").exists()
    if not (d / "metrics.json").exists():
        return False
    return not job.params.get("save") or (d / "model" / "config.json").exists()


def read_result(run_dir: Path, job: Job) -> dict[str, Any]:
    d = job_dir(run_dir, job.key)
    name = "fusion.json" if job.kind == "fuse" else "metrics.json"
    return json.loads((d / name).read_text(encoding="utf-8"))


# ---- execution (runs in whatever process the executor chooses) ----------------------------

def execute_job(job: dict[str, Any], run_dir: str, device: str | None = None) -> dict[str, Any]:
    """Run one job from its data description and return a small summary of its result.

    Module-level and argument-only so that process pools and Ray can ship it.
    """
    run_dir_p = Path(run_dir)
    kind, params, key = job["kind"], job["params"], job["key"]
    out = job_dir(run_dir_p, key)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fuse":
        from basefuse.fusion.api import fuse

        sources = [model_path_of(run_dir_p, ref) for ref in params["sources"]]
        manifest = fuse(sources, out, base=model_path_of(run_dir_p, params["base"]),
                        method=params["method"], force=True, progress=False,
                        **params.get("method_params", {}))
        return {"n_sources": len(sources), "method": params["method"],
                "n_dropped": len(manifest["dropped_keys"])}
    if kind == "finetune":
        from basefuse.data.api import load_task
        from basefuse.finetuning.api import finetune
        from basefuse.finetuning.config import FinetuneConfig

        t = params["task"]
        task = load_task(t["spec"], max_train=params.get("max_train"), text_col=t["text_col"],
                         label_col=t["label_col"], pair_col=t.get("pair_col"), family=t.get("family"))
        metrics = finetune(model_path_of(run_dir_p, params["model"]), task,
                           config=FinetuneConfig(**params["hparams"]), seed=params["seed"],
                           out=out, save=bool(params.get("save")), device=device, progress=False,
                           force=True)
        return summarise_metrics(metrics)
    raise ValueError(f"unknown job kind {kind!r}")


def summarise_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few numbers the store keeps of a finetune: test accuracy and macro-F1, and its wall time."""
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else metrics
    return {"accuracy": float(test["accuracy"]), "macro_f1": float(test["macro_f1"]),
            "wall_s": metrics.get("wall_time_s", metrics.get("wall_s"))}
