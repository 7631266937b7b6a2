"""`results.jsonl`: the report rows, derived from the plan and the store by one writer.

The store is the record of finished jobs; this file is a view of it (one row per planned run
whose job is in the store), rewritten whole and atomically, never appended, so it never holds a
row twice and a crash leaves the previous complete version.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from basefuse.experiments.protocol import Plan, PlannedRun
from basefuse.experiments.records import RunRecord
from basefuse.experiments.store import JobStore
from basefuse.io import write_text_atomic

RESULTS = "results.jsonl"


def _record(run: PlannedRun, result: dict[str, Any]) -> RunRecord:
    return RunRecord(**run.record_fields(), accuracy=result["accuracy"], macro_f1=result["macro_f1"])


def records_from(plan: Plan, store: JobStore) -> list[RunRecord]:
    """The report rows the store has results for, in plan order."""
    out = []
    for run in plan.runs:
        result = store.get(run.job_key)
        if result is not None and "accuracy" in result:
            out.append(_record(run, result))
    return out


def write_results(run_dir: Path, records: list[RunRecord]) -> Path:
    """Rewrite results.jsonl whole, atomically."""
    path = Path(run_dir) / RESULTS
    write_text_atomic(path, "".join(r.model_dump_json() + "\n" for r in records))
    return path


class ResultsWriter:
    """The one writer of a run's results.jsonl: rewrites it at most every `every_s` seconds while jobs
    finish (a long run's results stay readable without rewriting a large file per job), and at the end."""

    def __init__(self, run_dir: Path, plan: Plan, store: JobStore, every_s: float = 5.0,
                 enabled: bool = True) -> None:
        self.run_dir, self.plan, self.store, self.every_s = Path(run_dir), plan, store, every_s
        self.enabled = enabled
        self._last = time.monotonic()

    def changed(self) -> None:
        """A job finished: rewrite now if the last rewrite is old enough, else at a later change or the end."""
        if time.monotonic() - self._last >= self.every_s:
            self.write()

    def write(self) -> None:
        """Rewrite now. A failure (e.g. a full disk) is a warning: the store is the record, the next write
        or the next run rewrites this file."""
        if not self.enabled:
            return
        try:
            write_results(self.run_dir, records_from(self.plan, self.store))
        except OSError as e:
            print(f"basefuse: warning: cannot rewrite {self.run_dir / RESULTS}: {e.strerror or e}; "
                  f"the next run rewrites it", file=sys.stderr)
        self._last = time.monotonic()
