"""Scale-out on a Ray cluster: the same job functions, shipped as Ray tasks.

Run dirs must be on storage every Ray node sees (a shared filesystem), since jobs read
their inputs from and write their outputs to the run directory.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from basefuse.errors import BasefuseError
from basefuse.executors.base import ExecutorBase, JobFn, Resources


def _call(fn: JobFn, job: dict[str, Any], resources: Resources) -> dict[str, Any]:
    # ray.remote takes only plain functions (the job function is often a functools.partial); Ray itself
    # makes the GPUs it reserved for the task the visible ones, so no GPU index is assigned here
    return fn(job, resources)


class RayExecutor(ExecutorBase):
    """Each job reserves `num_cpus_per_job` CPUs (its torch threads) and `num_gpus_per_job` GPUs (e.g. 0.125:
    eight jobs share a GPU); at most `workers` jobs are in flight (default: the cluster's CPUs per job)."""

    def __init__(self, workers: int = 0, address: str | None = None, num_gpus_per_job: float = 0.0,
                 num_cpus_per_job: float = 1.0) -> None:
        try:
            import ray
        except ImportError:
            raise BasefuseError("the ray executor needs Ray: pip install 'basefuse[ray]'") from None
        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        self.workers = workers or max(1, int(ray.available_resources().get("CPU", 1) // max(num_cpus_per_job, 1)))
        self._remote = ray.remote(_call).options(num_gpus=num_gpus_per_job, num_cpus=num_cpus_per_job)
        self.resources = Resources(threads=max(1, int(num_cpus_per_job)))
        self._pending: list[Any] = []

    def submit(self, fn: JobFn, job: dict[str, Any]) -> Hashable:
        ref = self._remote.remote(fn, job, self.resources)
        self._pending.append(ref)
        return ref

    def wait(self) -> list[tuple[Hashable, dict[str, Any]]]:
        if not self._pending:
            raise RuntimeError("wait() with no job submitted")
        done, self._pending = self._ray.wait(self._pending, num_returns=1)
        return [(ref, self._ray.get(ref)) for ref in done]

    def close(self) -> None:
        for ref in self._pending:
            self._ray.cancel(ref)
        self._pending = []
        if self._owns_ray:  # only a cluster connection this executor opened
            self._ray.shutdown()
