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
from collections.abc import Iterator
from typing import Any

from basefuse.executors.base import JobFn


class LocalExecutor:
    """One job at a time in this process: simplest, and the finetunes use every core themselves."""

    workers = 1

    def map(self, fn: JobFn, jobs: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
        for i, job in enumerate(jobs):
            yield i, fn(job)

    def close(self) -> None:
        pass


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


def _init_worker(threads: int, parent: int) -> None:
    _die_with_parent(parent)
    os.environ["BASEFUSE_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass


class ProcessPoolExecutor:
    """`workers` processes, each with its share of the cores: keeps one GPU busy with several small finetunes."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                            initializer=_init_worker, initargs=(threads, os.getpid()))

    def start(self) -> None:
        """Spawn every worker now (imports, thread setup), e.g. so a benchmark does not time start-up."""
        list(self._pool.map(int, range(self.workers)))

    def map(self, fn: JobFn, jobs: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
        futures = {self._pool.submit(fn, job): i for i, job in enumerate(jobs)}
        try:
            for fut in cf.as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            for fut in futures:
                fut.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
