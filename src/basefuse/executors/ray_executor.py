"""Scale-out on a Ray cluster: the same job functions, shipped as Ray tasks.

Run dirs must be on storage every Ray node sees (a shared filesystem), since jobs read
their inputs from and write their outputs to the run directory; `check_shared` checks it on
every node that can run a job before any job is submitted.
"""
from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
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
        self._needs = {"CPU": num_cpus_per_job, "GPU": num_gpus_per_job}
        self.resources = Resources(threads=max(1, int(num_cpus_per_job)))
        self._pending: list[Any] = []

    def job_nodes(self) -> list[dict[str, Any]]:
        """The alive nodes with the resources of one job (the nodes jobs may be scheduled on)."""
        return [n for n in self._ray.nodes() if n.get("Alive")
                and all(n.get("Resources", {}).get(r, 0.0) >= need for r, need in self._needs.items() if need > 0)]

    def check_shared(self, run_dir: Path, paths: list[str], timeout_s: float = 300.0) -> None:
        """One small task pinned to each node that can run a job: it must read back the token this process writes
        into `run_dir`, write beside it and see every path; otherwise one line naming the node and what it lacks."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from basefuse.executors.shared_storage import node_problem, refusal, token_file

        nodes = self.job_nodes()
        if not nodes:
            raise BasefuseError(f"no alive Ray node has the resources of one job ({self._needs}): add nodes, or "
                                "lower --threads / --gpus-per-job")
        check = self._ray.remote(node_problem)
        with token_file(run_dir) as (name, token):
            refs = [check.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"],
                                                                                                 soft=False))
                    .remote(str(run_dir), name, token, list(paths), n["NodeID"][:16]) for n in nodes]
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
            for node, ref in zip(nodes, refs):
                problem = (self._ray.get(ref) if ref in ready
                           else f"did not answer the start-up check in {timeout_s:g} s")
                if problem is not None:
                    raise BasefuseError(refusal(node.get("NodeManagerAddress", "?"), node["NodeID"], problem))

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
