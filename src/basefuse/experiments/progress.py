"""A progress bar over an experiment's jobs (rich) on a terminal; one plain line per finished job on stderr
otherwise (a log file gets every job, not one cut-off line redrawn); silent when disabled."""
from __future__ import annotations

import sys
from typing import Any

from basefuse.experiments.jobs import Job


class JobProgress:
    def __init__(self, total: int, enabled: bool = True, terminal: bool | None = None) -> None:
        self.enabled = enabled
        self.total = total
        self._progress = None
        self._task = None
        self._terminal = sys.stderr.isatty() if terminal is None else terminal
        self._lines = enabled and not self._terminal
        self._finished = 0

    def _line(self, text: str) -> None:
        self._finished += 1
        print(f"[{self._finished}/{self.total}] {text}", file=sys.stderr, flush=True)

    def __enter__(self) -> "JobProgress":
        if self.enabled and self._terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                      TextColumn("{task.fields[last]}"), transient=False)
            self._progress.__enter__()
            self._task = self._progress.add_task("jobs", total=self.total, last="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def counts(self, done: int, running: int, waiting: int) -> None:
        """How many jobs are finished (done, reused, failed or skipped), running now, and waiting."""
        if self._progress is not None:
            self._progress.update(self._task, description=f"jobs: {done} done, {running} running, {waiting} waiting")

    def advance(self, job: Job, result: dict[str, Any] | None, reused: bool) -> None:
        tail = "reused" if reused else ""
        if result and "accuracy" in result and not reused:
            tail = f"acc {100 * result['accuracy']:.1f}"
        if self._lines:
            self._line(f"{job.label} {tail or 'done'}")
        if self._progress is None:
            return
        self._progress.update(self._task, advance=1, last=f"{job.label[:60]} {tail}")

    def fail(self, job: Job, error: str | None) -> None:
        """A job that failed (`error`) or was skipped because a job it needs failed (None)."""
        if self._lines:
            self._line(f"{job.label} " + (f"FAILED: {error}" if error is not None else "skipped (an input failed)"))
        if self._progress is None:
            return
        tail = f"FAILED: {error[:60]}" if error is not None else "skipped (an input failed)"
        self._progress.update(self._task, advance=1, last=f"{job.label[:40]} {tail}")
