"""The executor interface: map a job function over independent job descriptions."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

#: A job function takes a job description (plain data) and returns a small result dict.
JobFn = Callable[[dict[str, Any]], dict[str, Any]]


class Executor(Protocol):
    """Runs independent jobs and yields (index, result) in completion order.

    An exception raised by a job is re-raised by the iterator; jobs already yielded stay
    done (the caller has recorded them), so a later run resumes after them.
    """

    workers: int

    def map(self, fn: JobFn, jobs: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]: ...

    def close(self) -> None: ...
