"""Read the fusion's input files just ahead of the engine, in one thread, hashing them on the way if needed.

The engine maps a few hundred KB of each of N+1 files in turn and touches them page by page: on a cold page
cache each first touch waits for the disk, in the thread that also does the arithmetic (issue 19, N=5 bf16
with digests cached: 11.4-11.7 s cold against 5.4-6.8 s for `cat`). This thread sends the next 16 MB of each file
to /dev/null with sendfile, which fills the page cache with large sequential reads and copies nothing, so the
engine finds its pages in memory (6.8-8.3 s); a file whose sha256 is still wanted is then hashed from the same
pages, mapped with MAP_POPULATE. Each byte leaves the disk once, in file order, and the digest and the fusion
share one pass. (Tried and measured slower on the 2-core VM: pread into a buffer, a copy of every byte; the
reads done by MAP_POPULATE alone, or by POSIX_FADV_WILLNEED; two threads.)

The engine reads a checkpoint in (file, offset) order and reports how far it has mapped each file
(`FileStream.reached`). The thread stays within AHEAD bytes in front of that point, so what it reads is still
in memory when the engine gets there; bytes the engine skips (the header, a dropped head) are read in their
turn. A digest must cover every byte: if the engine runs MAX_LAG in front of the hash (hashing, under 2 GB/s
a core, is no faster than this VM's disk), it waits, so that the pages the hash still needs are not evicted at N=10,
where the inputs exceed memory. Whatever the engine never reached is hashed by `ReadAhead.finish`. Windows
already in the page cache are not read again (`_cached`), so a warm run pays nothing for the read-ahead.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from basefuse.errors import BasefuseError
from basefuse.io import hash_range

WINDOW = 16 << 20    # a step reads up to the next multiple of this
AHEAD = 64 << 20     # how far in front of the engine's reads the thread may read
MAX_LAG = 256 << 20  # how far the engine's reads may run in front of a file's hash before the engine waits


class FileStream:
    """One input file: how far the engine has mapped it, how far this thread has read (and hashed) it."""

    def __init__(self, path: Path, owner: "ReadAhead", digest: bool) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.digest = digest
        self.pos = 0        # bytes read by the thread (and hashed, with `digest`)
        self.frontier = 0   # bytes the engine has mapped; with `digest`, all must be hashed
        self.error: Exception | None = None
        self._h = hashlib.sha256() if digest else None
        self._owner = owner

    def reached(self, end: int) -> None:
        """The engine has mapped the file up to byte `end`; waits while it is MAX_LAG ahead of the hash.

        Called for every window the engine maps (tens of thousands per fusion): the thread is woken only when
        a whole window can be read, so the two threads do not trade the GIL at every call."""
        if end <= self.frontier:  # frontier only grows: a read behind it changes nothing
            return
        owner = self._owner
        with owner.cond:
            self.frontier = min(max(self.frontier, end), self.size)
            if owner.waiting and self.ready():
                owner.cond.notify_all()
            while self.digest and self.frontier - self.pos > MAX_LAG and self.error is None and not owner.stopped:
                owner.cond.wait(0.1)

    def limit(self) -> int:
        """How far the thread may read now: AHEAD past the engine, or the end once the digest is asked for."""
        return self.size if self.frontier >= self.size else min(self.size, self.frontier + AHEAD)

    def ready(self) -> bool:
        """A step is due: a whole window fits below the limit, or the limit is the end of the file."""
        if self.error is not None:
            return False
        start = self.pos if self.digest else max(self.pos, self.frontier)
        end = self.limit()
        return start < end and (end == self.size or end - start >= WINDOW)

    def step(self, fd: int, sink: int | None) -> None:
        """Read (and hash) the next window; called by the thread only, without the lock.

        The bytes go to `sink` (/dev/null) with sendfile: the kernel's sequential read-ahead fills the page
        cache and nothing is copied; the hash then reads the window where it lies, mapped with MAP_POPULATE.
        (pread into a buffer costs a copy of every byte: 4 s of CPU at N=5, a fifth of the run's.)
        """
        lo = self.pos if self.digest else max(self.pos, self.frontier)  # a read-only pass skips what was read
        hi = min(self.limit(), lo - lo % WINDOW + WINDOW)
        if hi > lo:
            off = lo if sink is None or not _cached(fd, hi - 1) else hi  # warm: nothing to read ahead
            while off < hi:
                n = os.sendfile(sink, fd, off, hi - off) if sink is not None else len(os.pread(fd, hi - off, off))
                if n == 0:
                    raise ValueError(f"the file ends at byte {off}, not {self.size}")
                off += n
            if self._h is not None:
                hash_range(self._h, fd, lo, hi)
        self.pos = max(self.pos, hi)

    def hexdigest(self) -> str:
        assert self._h is not None
        return self._h.hexdigest()


def _cached(fd: int, offset: int) -> bool:
    """Whether the page holding byte `offset` is in the page cache (a read that may not wait for the disk);
    read-ahead fills a window's pages together, so its last page stands for the window."""
    try:
        return os.preadv(fd, [bytearray(1)], offset, os.RWF_NOWAIT) == 1
    except (OSError, AttributeError):  # EAGAIN: not cached; no RWF_NOWAIT here: assume not
        return False


def in_page_cache(path: Path, probes: int = 16) -> bool:
    """Whether `path` looks wholly in the page cache: `probes` evenly spaced pages, first and last included."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        size = os.fstat(fd).st_size
        return size == 0 or all(_cached(fd, (size - 1) * i // (probes - 1)) for i in range(probes))
    finally:
        os.close(fd)


def _null_sink() -> int | None:
    """/dev/null opened for sendfile (Linux); None where sendfile cannot write to it (then pread is used)."""
    if not hasattr(os, "sendfile") or not os.path.exists(os.devnull):
        return None
    return os.open(os.devnull, os.O_WRONLY)


class ReadAhead:
    """The thread reading the FileStreams, the one nearest to (or furthest behind) the engine first. One thread:
    with two (two files at a time) N=5 cold ran 1.5 s slower on the 2-core VM (3 runs each)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.stopped = False
        self.waiting = False  # the thread is waiting for work
        self.failed: Exception | None = None  # why the thread ended early, if it did
        self.streams: list[FileStream] = []
        self._thread: threading.Thread | None = None

    def add(self, path: Path, digest: bool) -> FileStream:
        """Start reading `path` ahead of the engine (its first AHEAD bytes at once); `digest`: hash it too."""
        st = FileStream(Path(path), self, digest)
        with self.cond:
            st.error = self.failed
            self.streams.append(st)
            if self._thread is None and not self.stopped:
                self._thread = threading.Thread(target=self._run, name="basefuse-readahead", daemon=True)
                self._thread.start()
            self.cond.notify_all()
        return st

    def _run(self) -> None:
        fds: dict[Path, int] = {}
        sink = None
        try:
            sink = _null_sink()
            while True:
                with self.cond:
                    while not self.stopped and not any(s.ready() for s in self.streams):
                        self.waiting = True
                        self.cond.wait()
                        self.waiting = False
                    if self.stopped:
                        return
                    st = min((s for s in self.streams if s.ready()), key=lambda s: s.pos - s.frontier)
                try:
                    if st.path not in fds:
                        fds[st.path] = os.open(st.path, os.O_RDONLY)
                    st.step(fds[st.path], sink)
                except Exception as e:  # noqa: BLE001  a file that shrank or went away: finish() says so
                    st.error = e
                with self.cond:
                    self.cond.notify_all()
        except Exception as e:  # noqa: BLE001  the thread itself failed: no stream may wait on it; finish() says why
            with self.cond:
                self.failed = e
                for s in self.streams:
                    s.error = s.error or e
                self.cond.notify_all()
        finally:
            for fd in [*fds.values(), *([sink] if sink is not None else [])]:
                os.close(fd)

    def finish(self, st: FileStream) -> str:
        """Hash the rest of the file (what the engine did not reach) and return its sha256."""
        with self.cond:
            st.frontier = st.size
            self.cond.notify_all()
            while st.pos < st.size and st.error is None:
                if self.stopped:
                    raise InterruptedError(f"hashing {st.path} stopped")
                self.cond.wait(0.1)
        if st.error is not None:
            raise BasefuseError(f"{st.path}: cannot read it to the end for its sha256 ({st.error}); "
                                "was it changed while fusing?")
        return st.hexdigest()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join()
