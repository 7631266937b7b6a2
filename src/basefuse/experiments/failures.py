"""Failed jobs: a job that raises is recorded, not fatal; the jobs built on it are skipped.

The store keeps only finished jobs, so a rerun retries every failed or skipped job. What
went wrong in the last run is written to RUN/failures.json (replaced whole):

    {"failed":  [{"key", "kind", "label", "error", "traceback", "runs": [report row fields, ...]}],
     "skipped": [{"key", "kind", "label", "because": [keys of failed or skipped jobs it needs], "runs": [...]}]}

`runs` are the report rows (PlannedRun.record_fields) the job would have produced.
"""
from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from basefuse.errors import BasefuseError
from basefuse.executors.base import Resources
from basefuse.io import write_json

FAILURES = "failures.json"


def attempt_job(job: dict[str, Any], resources: Resources, run_dir: str, device: str | None = None) -> dict[str, Any]:
    """Run one job with the executor's `resources` and report how it went, instead of raising (module-level:
    executors ship it). Returns {"ok": True, "result": ...} or {"ok": False, "error": one line, "traceback": ...}.
    """
    from basefuse.experiments.jobs import execute_job

    try:
        return {"ok": True, "result": execute_job(job, run_dir=run_dir, device=resources.device(device),
                                                  threads=resources.threads)}
    except Exception as e:  # noqa: BLE001 - any job error is that job's failure; Ctrl-C still stops the run
        return {"ok": False, "error": describe(e), "traceback": traceback.format_exc()}


def describe(e: BaseException) -> str:
    """One line: a BasefuseError's message says it all; other errors are named by their type."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, BasefuseError):
        return text or type(e).__name__
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@dataclass
class Failures:
    """The failed and skipped jobs of one run, by key."""

    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)

    def blocking(self, deps: tuple[str, ...]) -> list[str]:
        """The dependencies that failed or were skipped: a job needing one cannot run."""
        return [d for d in deps if d in self.failed or d in self.skipped]

    def add_failed(self, job: Any, outcome: dict[str, Any], runs: list[dict[str, Any]]) -> None:
        self.failed[job.key] = {"key": job.key, "kind": job.kind, "label": job.label, "error": outcome["error"],
                                "traceback": outcome.get("traceback", ""), "runs": runs}

    def add_skipped(self, job: Any, because: list[str], runs: list[dict[str, Any]]) -> None:
        self.skipped[job.key] = {"key": job.key, "kind": job.kind, "label": job.label, "because": because,
                                 "runs": runs}

    def __bool__(self) -> bool:
        return bool(self.failed or self.skipped)

    def write(self, run_dir: Path) -> Path:
        """Replace RUN/failures.json; a failed write (a full disk) is a warning: the CLI names the failures too."""
        path = Path(run_dir) / FAILURES
        try:
            write_json(path, {"failed": list(self.failed.values()), "skipped": list(self.skipped.values())})
        except OSError as e:
            print(f"basefuse: warning: cannot write {path}: {e.strerror or e}", file=sys.stderr)
        return path


def raise_if_failed(failures: "Failures", what: str, run_dir: Path) -> None:
    """A staged run (selection rounds, a ranking) cannot go on past a failed job: one line naming the first."""
    if not failures:
        return
    from basefuse.errors import BasefuseError

    first = next(iter(failures.failed.values()), None)
    raise BasefuseError(f"{what} stopped: {len(failures.failed)} job(s) failed"
                        + (f", first {first['label']}: {first['error']}" if first else "")
                        + f"; rerun to retry them (details: {Path(run_dir) / 'failures.json'})")


def read_failures(run_dir: str | Path) -> list[str]:
    """For the report: one line per failed job (its error) and per job skipped because a job it needed failed."""
    try:
        data = json.loads((Path(run_dir) / FAILURES).read_text(encoding="utf-8", errors="replace"))
    except (OSError, json.JSONDecodeError):
        return []
    if not isinstance(data, dict):
        return []
    rows = [r for r in data.get("failed", []) if isinstance(r, dict)]
    out = [f"{r.get('label', r.get('key', '?'))}: {(str(r.get('error', '')).splitlines() or ['?'])[0]}" for r in rows]
    skipped = [r for r in data.get("skipped", []) if isinstance(r, dict)]
    out += [f"{r.get('label', r.get('key', '?'))}: skipped (a job it needs failed)" for r in skipped]
    return out
