"""`plan.json`: every run an experiment planned, so a report can say what is missing.

The runner writes it once the plan is built (before any job runs); `basefuse report` reads it.
For run directories older than this file, `rebuild_planned_runs` recomputes the planned grid from
`experiment.yaml` without loading any task data (job keys then are not the real ones, and the
choice of the "largest" intertraining source is unknown, so only the grid is meaningful).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from basefuse.errors import BasefuseError
from basefuse.io import write_error, write_json

PLAN = "plan.json"


def plan_dict(plan: Any) -> dict[str, Any]:
    """The JSON form of a `protocol.Plan`: its runs (record fields and job key) and its job graph."""
    return {"runs": [r.record_fields() for r in plan.runs],
            "jobs": [{"kind": j.kind, "label": j.label, "key": j.key, "deps": list(j.deps)}
                     for j in plan.jobs.values()]}


def write_plan(run_dir: str | Path, plan: Any) -> Path:
    """Write RUN_DIR/plan.json atomically (a temporary file renamed into place)."""
    path = Path(run_dir) / PLAN
    try:
        write_json(path, plan_dict(plan))
    except OSError as e:  # the temporary file is gone: nothing half-written is left
        raise write_error(e, f"cannot write {path}: {e.strerror or e}; free space (or choose another --out) and "
                             "rerun (no job has run yet)") from None
    return path


def read_plan(run_dir: str | Path) -> dict[str, Any] | None:
    """RUN_DIR/plan.json as written by `write_plan`, or None when the run has none."""
    path = Path(run_dir) / PLAN
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise BasefuseError(f"{path}: not readable JSON ({e}); delete it and rerun `basefuse experiment` "
                            "to write it again") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise BasefuseError(f"{path}: key 'runs' (a list) is missing; delete it and rerun `basefuse experiment`")
    for i, run in enumerate(data["runs"]):
        missing = [k for k in ("target", "condition", "seed") if not isinstance(run, dict) or k not in run]
        if missing:
            raise BasefuseError(f"{path}: runs[{i}] lacks {', '.join(missing)}; delete it and rerun "
                                "`basefuse experiment`")
    return data


def rebuild_planned_runs(config_path: str | Path) -> dict[str, Any]:
    """The planned grid of an experiment.yaml, computed offline (placeholder task facts, no job keys)."""
    from basefuse.experiments.config import load_experiment_config
    from basefuse.experiments.protocol import TaskFacts, build_plan

    cfg = load_experiment_config(config_path)
    facts = {name: TaskFacts(0, "?", "?") for name in cfg.task_refs()}
    data = plan_dict(build_plan(cfg, facts, "?", "?"))
    for run in data["runs"]:
        run["job_key"] = ""
    for job in data["jobs"]:
        job["key"] = ""
    return data
