"""The executor interface: run job functions as they are submitted, hand back results as they finish.

Executors know no experiment: a job is plain data, a job function turns it into a small result dict,
and `Resources` says what the executor lets one job use (CPU threads, a GPU of its own).
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Resources:
    """What one job may use, decided by the executor that runs it."""

    threads: int  # CPU threads for the job's torch work
    gpu: int | None = None  # the GPU this worker owns on a several-GPU machine (None: none assigned)

    def device(self, requested: str | None) -> str | None:
        """The device a job should use: `requested`, pinned to this worker's GPU when one is assigned
        ("cuda" or the default becomes "cuda:i"; "cpu" and an explicit "cuda:j" stay as asked)."""
        if self.gpu is None or requested not in (None, "cuda"):
            return requested
        return f"cuda:{self.gpu}"


#: A job function takes a job description (plain data) and its resources and returns a small result dict.
JobFn = Callable[[dict[str, Any], Resources], dict[str, Any]]


class Executor(Protocol):
    """Runs submitted jobs, at most `workers` at a time, and hands back each result once.

    `submit` starts (or queues) a job and returns its handle; `wait` blocks until at least one
    submitted job has finished and returns every finished one as (handle, result) pairs. An
    exception raised by a job is re-raised by `wait`. An executor whose jobs run on other machines
    also has `check_shared(run_dir, paths)` (see `ExecutorBase`), which the runner calls before any
    job. Whoever creates an executor closes it (it is a context manager); code that is given one
    never does.
    """

    workers: int

    def submit(self, fn: JobFn, job: dict[str, Any]) -> Hashable: ...

    def wait(self) -> list[tuple[Hashable, dict[str, Any]]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc: object) -> None: ...


class ExecutorBase:
    """Context-manager plumbing shared by the executors."""

    def check_shared(self, run_dir: Path, paths: list[str]) -> None:
        """Refuse (BasefuseError) before any job if a machine that runs jobs does not see `run_dir` as this process
        does, or one of `paths`. Jobs on this machine see its files: nothing to check."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "ExecutorBase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
