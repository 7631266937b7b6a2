"""In-process and multi-process executors on this machine."""
from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Hashable
from typing import Any

from basefuse.executors.base import ExecutorBase, JobFn, Resources


def cores() -> int:
    return os.cpu_count() or 1


class LocalExecutor(ExecutorBase):
    """One job at a time in this process: simplest, and the finetunes use every core themselves.

    A submitted job runs when `wait` is called, so the caller decides the order.
    """

    workers = 1

    def __init__(self, threads: int | None = None) -> None:
        self.resources = Resources(threads=threads or cores())
        self._queue: deque[tuple[int, JobFn, dict[str, Any]]] = deque()
        self._next = 0

    def submit(self, fn: JobFn, job: dict[str, Any]) -> Hashable:
        self._next += 1
        self._queue.append((self._next, fn, job))
        return self._next

    def wait(self) -> list[tuple[Hashable, dict[str, Any]]]:
        if not self._queue:
            raise RuntimeError("wait() with no job submitted")
        handle, fn, job = self._queue.popleft()
        return [(handle, fn(job, self.resources))]


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive a killed parent (it would keep its memory, or a GPU's).

    On Linux the kernel kills it when the parent dies (the pool spawns workers from the caller's
    thread, whose exit is what the kernel watches); everywhere a daemon thread also checks that
    the parent is still ours, which covers other systems and a parent that died before the prctl.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl: the watchdog remains
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="basefuse-parent-watch", daemon=True).start()


#: This worker process's resources, set once when the pool starts it.
_WORKER: Resources | None = None


def _init_worker(threads: int, gpus: Any, parent: int) -> None:
    global _WORKER
    _die_with_parent(parent)
    _WORKER = Resources(threads=threads, gpu=gpus.get())  # each worker takes the next slot once
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass


def _in_worker(fn: JobFn, job: dict[str, Any]) -> dict[str, Any]:
    assert _WORKER is not None, "not in a basefuse pool worker"
    return fn(job, _WORKER)


def gpu_slots(workers: int, n_gpus: int) -> list[int | None]:
    """Worker i gets GPU i % n on a machine with several GPUs; with one or none, the job's device decides."""
    return [i % n_gpus if n_gpus > 1 else None for i in range(workers)]


def gpu_count() -> int:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return 0
    return torch.cuda.device_count()


class ProcessPoolExecutor(ExecutorBase):
    """`workers` processes, each with `threads` CPU threads (default: its share of the cores) and, on a
    machine with several GPUs, a GPU of its own: keeps GPUs busy with several small finetunes each.

    `gpus` is the number of GPUs to spread the workers over (default: as many as torch sees).
    """

    def __init__(self, workers: int, threads: int | None = None, gpus: int | None = None) -> None:
        self.workers = max(1, workers)
        self.threads = threads or max(1, cores() // self.workers)
        self.gpus = gpu_slots(self.workers, gpu_count() if gpus is None else gpus)
        ctx = mp.get_context("spawn")
        slots = ctx.Queue()
        for gpu in self.gpus:
            slots.put(gpu)
        self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                                            initargs=(self.threads, slots, os.getpid()))
        self._pending: set[cf.Future] = set()

    def start(self) -> None:
        """Spawn every worker now (imports, thread setup), e.g. so a benchmark does not time start-up."""
        list(self._pool.map(int, range(self.workers)))

    def submit(self, fn: JobFn, job: dict[str, Any]) -> Hashable:
        fut = self._pool.submit(_in_worker, fn, job)
        self._pending.add(fut)
        return fut

    def wait(self) -> list[tuple[Hashable, dict[str, Any]]]:
        if not self._pending:
            raise RuntimeError("wait() with no job submitted")
        done, self._pending = cf.wait(self._pending, return_when=cf.FIRST_COMPLETED)
        return [(fut, fut.result()) for fut in done]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
