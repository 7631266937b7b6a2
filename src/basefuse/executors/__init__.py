"""Executors run independent jobs; the experiment protocol never knows which one it got."""
from __future__ import annotations

from basefuse.executors.base import Executor, JobFn, Resources
from basefuse.executors.local import LocalExecutor, ProcessPoolExecutor


def make_executor(name: str = "local", workers: int = 1, *, threads: int | None = None,
                  address: str | None = None, gpus_per_job: float = 0.0) -> Executor:
    """`local` runs jobs one by one in this process; `process` runs `workers` processes with `threads`
    CPU threads each (several finetunes sharing a GPU; one GPU per worker in turn on a several-GPU
    machine); `ray` sends them to a Ray cluster, each job reserving `threads` CPUs and `gpus_per_job`
    GPUs. The caller closes it (it is a context manager)."""
    from basefuse.errors import BasefuseError

    if name == "local":
        return LocalExecutor(threads) if workers <= 1 else ProcessPoolExecutor(workers, threads)
    if name == "process":
        return ProcessPoolExecutor(max(1, workers), threads)
    if name == "ray":
        from basefuse.executors.ray_executor import RayExecutor

        return RayExecutor(workers=workers, address=address, num_gpus_per_job=gpus_per_job,
                           num_cpus_per_job=float(threads or 1))
    raise BasefuseError(f"unknown executor {name!r}: use local, process or ray")


__all__ = ["Executor", "JobFn", "LocalExecutor", "ProcessPoolExecutor", "Resources", "make_executor"]
