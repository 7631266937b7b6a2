"""One owner per run directory: an OS lock on RUN/.lock, held for the whole run.

`flock` is released by the kernel when its holder dies (even by kill -9), so a lock is never
left stale; the file only records the holder's pid for the error message. A run that holds
the lock may remove what dead processes left behind, since nothing else writes there.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from basefuse.errors import BasefuseError
from basefuse.io import pid_alive, remove_stale_temporaries

LOCK_NAME = ".lock"


def _holder(fd: int) -> str:
    try:
        pid = int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError):
        return "another process"
    # only a writer records its pid: a dead pid means a reader (`basefuse report`) holds it now
    return f"process {pid}" if pid_alive(pid) else "another process"


@contextlib.contextmanager
def own_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold RUN/.lock exclusively for the block; a second process gets a one-line error naming the holder."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise BasefuseError(f"cannot write to the run directory {run_dir}: {e.strerror or e}; "
                            f"choose a writable folder with --out") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BasefuseError(f"{run_dir} is in use by {_holder(fd)} (a run directory has one owner): "
                                f"wait for it to finish, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # while still held: the next reader must not be named after us
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def read_run_dir(run_dir: Path, *, writes_inside: bool) -> Iterator[None]:
    """Read a run directory without racing its writer.

    Holds a shared lock, so no experiment starts on the folder meanwhile. While an experiment
    runs, reading its results so far is fine (results.jsonl is only ever replaced whole), but
    writing inside the folder (RUN/report) would race the run's own report.
    """
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file: a run of an older version, or a read-only copy
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            if writes_inside:
                raise BasefuseError(f"{run_dir} is being written by {_holder(fd)}: wait for it to finish, "
                                    f"or pass --out to a folder outside it to report the results so far") from None
        yield
    finally:
        os.close(fd)


def run_in_progress(run_dir: Path) -> bool:
    """Whether a process holds RUN/.lock exclusively now (an experiment running in the folder)."""
    try:
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Remove the temporaries dead processes left in the run directory (call only while owning it)."""
    run_dir = Path(run_dir)
    return remove_stale_temporaries(run_dir) + remove_stale_temporaries(run_dir / "jobs")
