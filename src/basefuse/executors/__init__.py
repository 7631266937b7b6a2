"""Executors run independent jobs; the experiment protocol never knows which one it got."""
from __future__ import annotations

from basefuse.executors.base import Executor, JobFn
from basefuse.executors.local import LocalExecutor, ProcessPoolExecutor


def make_executor(name: str = "local", workers: int = 1, **options: object) -> Executor:
    """`local` runs jobs one by one in this process; `process` runs `workers` processes
    (several finetunes sharing one GPU); `ray` sends them to a Ray cluster."""
    from basefuse.errors import BasefuseError

    if name == "local":
        return LocalExecutor() if workers <= 1 else ProcessPoolExecutor(workers)
    if name == "process":
        return ProcessPoolExecutor(max(1, workers))
    if name == "ray":
        from basefuse.executors.ray_executor import RayExecutor

        return RayExecutor(workers=workers, **options)  # type: ignore[arg-type]
    raise BasefuseError(f"unknown executor {name!r}: use local, process or ray")


__all__ = ["Executor", "JobFn", "LocalExecutor", "ProcessPoolExecutor", "make_executor"]
