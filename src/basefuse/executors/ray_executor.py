"""Scale-out on a Ray cluster: the same job functions, shipped as Ray tasks.

Run dirs must be on storage every Ray node sees (a shared filesystem), since jobs read
their inputs from and write their outputs to the run directory.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from basefuse.errors import BasefuseError
from basefuse.executors.base import JobFn


def _call(fn: JobFn, job: dict[str, Any], threads: int) -> dict[str, Any]:
    # ray.remote takes only plain functions (the job function is often a functools.partial), and a
    # finetune would otherwise use every core of the node, not the CPUs Ray reserved for the task
    os.environ["BASEFUSE_THREADS"] = str(threads)
    return fn(job)


class RayExecutor:
    def __init__(self, workers: int = 0, address: str | None = None, num_gpus_per_job: float = 0.0,
                 num_cpus_per_job: float = 1.0) -> None:
        try:
            import ray
        except ImportError:
            raise BasefuseError("the ray executor needs Ray: pip install 'basefuse[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        self.workers = workers or int(ray.available_resources().get("CPU", 1))
        self._options = {"num_gpus": num_gpus_per_job, "num_cpus": num_cpus_per_job}

    def map(self, fn: JobFn, jobs: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
        """At most `workers` tasks in flight: a new one is sent as each finishes."""
        ray = self._ray
        remote = ray.remote(_call).options(**self._options)
        fn_ref = ray.put(fn)
        threads = max(1, int(self._options["num_cpus"]))
        queue = iter(enumerate(jobs))
        pending: dict[Any, int] = {}

        def submit_next() -> None:
            nxt = next(queue, None)
            if nxt is not None:
                pending[remote.remote(fn_ref, nxt[1], threads)] = nxt[0]

        for _ in range(max(1, self.workers)):
            submit_next()
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    submit_next()
                    yield i, ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        pass
