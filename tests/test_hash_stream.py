"""Reading the fusion's inputs ahead of the engine (`checkpoints.readahead`): the sha256 computed on the way is
the file's, whatever the order and extent of the engine's reads; each byte is read once, in order; the thread
stays within AHEAD of the engine, and the engine never runs more than MAX_LAG in front of a hash."""
from __future__ import annotations

import hashlib
import json
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import basefuse.checkpoints.hashing as hashing
import basefuse.checkpoints.readahead as readahead
from basefuse.checkpoints.hashing import Hasher
from basefuse.errors import BasefuseError

MB = 1 << 20


@pytest.fixture(autouse=True)
def not_in_page_cache(monkeypatch):
    """Files written by a test are in the page cache, where the Hasher hashes them by a thread of their own:
    these tests are about the other path, so every file counts as cold unless a test says otherwise."""
    monkeypatch.setattr(hashing, "in_page_cache", lambda path: False)


@pytest.fixture()
def small_windows(monkeypatch):
    """Windows of 64 KiB, read at most 128 KiB ahead, so that small files take many steps."""
    monkeypatch.setattr(readahead, "WINDOW", 64 << 10)
    monkeypatch.setattr(readahead, "AHEAD", 128 << 10)


def _file(tmp_path, size: int, seed: int = 0):
    f = tmp_path / f"w{seed}-{size}.safetensors"
    f.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return f


def _streamed_digest(path, reads) -> str:
    h = Hasher(use_cache=False)
    try:
        h.submit(path, stream=True)
        cb = h.watch(path)
        assert cb is not None
        for end in reads:
            cb(end)
        return h.digest(path)
    finally:
        h.close(save=False)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 300_000), ends=st.lists(st.integers(0, 400_000), max_size=30))
def test_digest_is_the_file_sha256_for_any_reads(tmp_path_factory, size, ends):
    """Reads in any order, past the end, backwards, or none at all: the digest is hashlib's over the bytes."""
    saved = readahead.WINDOW, readahead.AHEAD
    readahead.WINDOW, readahead.AHEAD = 64 << 10, 96 << 10
    try:
        f = _file(tmp_path_factory.mktemp("s"), size, seed=size)
        assert _streamed_digest(f, ends) == hashlib.sha256(f.read_bytes()).hexdigest()
    finally:
        readahead.WINDOW, readahead.AHEAD = saved


def test_each_byte_hashed_once_in_order(tmp_path, small_windows, monkeypatch):
    f = _file(tmp_path, 1_000_003)
    steps: list[tuple[int, int]] = []
    real = readahead.FileStream.step

    def spy(self, fd, sink):
        lo = self.pos
        real(self, fd, sink)
        steps.append((lo, self.pos))

    monkeypatch.setattr(readahead.FileStream, "step", spy)
    # forward with gaps, a read behind the hash, then the end: like a fusion that skips a head
    assert _streamed_digest(f, [10_000, 400_000, 5_000, 900_000]) == hashlib.sha256(f.read_bytes()).hexdigest()
    assert steps[0][0] == 0 and steps[-1][1] == 1_000_003
    assert all(a[1] == b[0] for a, b in zip(steps, steps[1:]))  # contiguous: no byte twice, none skipped
    assert all(hi - lo <= 64 << 10 for lo, hi in steps)


def test_reader_waits_while_it_is_max_lag_ahead(tmp_path, small_windows, monkeypatch):
    monkeypatch.setattr(readahead, "MAX_LAG", 128 << 10)
    f = _file(tmp_path, 2 * MB)
    real = readahead.FileStream.step
    monkeypatch.setattr(readahead.FileStream, "step", lambda self, fd, sink: time.sleep(0.002) or real(self, fd, sink))
    h = Hasher(use_cache=False)
    try:
        h.submit(f, stream=True)
        job = h._jobs[f.resolve()]
        for end in range(256 << 10, 2 * MB + 1, 256 << 10):
            h.watch(f)(end)
            assert job.frontier - job.pos <= 128 << 10  # the hash is never more than MAX_LAG behind on return
        assert h.digest(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    finally:
        h.close(save=False)


def test_stop_releases_a_waiting_reader_and_digest_says_stopped(tmp_path, small_windows, monkeypatch):
    monkeypatch.setattr(readahead, "MAX_LAG", 64 << 10)
    f = _file(tmp_path, 4 * MB)
    gate = threading.Event()
    real = readahead.FileStream.step
    monkeypatch.setattr(readahead.FileStream, "step", lambda self, fd, sink: gate.wait() and real(self, fd, sink))
    h = Hasher(use_cache=False)
    h.submit(f, stream=True)
    done = threading.Event()
    t = threading.Thread(target=lambda: (h.watch(f)(4 * MB), done.set()))
    t.start()
    time.sleep(0.3)
    assert not done.is_set()          # held: the hash is stuck behind
    stopper = threading.Thread(target=h.close, kwargs={"save": False})
    stopper.start()
    assert done.wait(2.0)             # stopping releases the reader at once...
    gate.set()
    stopper.join(5)
    with pytest.raises(InterruptedError):
        h._streams.finish(h._jobs[f.resolve()])   # ...and a digest after the stop is refused, not made up


def test_a_file_cut_short_while_fusing_is_an_error_naming_it(tmp_path, small_windows):
    f = _file(tmp_path, 1 * MB)
    h = Hasher(use_cache=False)
    try:
        h.submit(f, stream=True)
        with open(f, "r+b") as fh:
            fh.truncate(100_000)
        with pytest.raises(BasefuseError, match=rf"{f.name}: cannot read it to the end for its sha256"):
            h.digest(f)
    finally:
        h.close(save=False)


def test_streamed_digest_goes_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    f = _file(tmp_path, 300_000)
    h = Hasher(use_cache=True)
    h.submit(f, stream=True)
    d = h.digest(f)
    h.close(save=True)
    cache = json.loads((tmp_path / "cache" / hashing.CACHE_NAME).read_text())
    assert cache[str(f.resolve())][3] == d == hashlib.sha256(f.read_bytes()).hexdigest()


def test_fusion_reports_its_reads_to_the_streams(tmp_path, monkeypatch):
    """In a fusion the engine's reads drive the hash: every source's file is reached to its end by the reads
    (no heads here), before fusion.json asks for the digests."""
    import torch
    from safetensors.torch import save_file

    import basefuse

    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    base = {f"model.layers.{i}.w": torch.randn(64, 64, generator=g) for i in range(4)}
    cfg = {"model_type": "llama", "architectures": ["LlamaModel"]}
    folders = []
    for k in range(3):
        d = tmp_path / f"ft{k}"
        d.mkdir()
        save_file({n: v + 0.01 * (k + 1) for n, v in base.items()}, str(d / "model.safetensors"))
        (d / "config.json").write_text(json.dumps(cfg))
        folders.append(d)
    seen: dict[str, int] = {}
    real_finish = readahead.ReadAhead.finish

    def spy(self, st):
        seen[st.path.parent.name] = st.frontier  # how far the fusion's own reads took it
        return real_finish(self, st)

    monkeypatch.setattr(readahead.ReadAhead, "finish", spy)
    m = basefuse.fuse(folders, tmp_path / "out", progress=False, hash_cache=False)
    assert seen == {f.name: (f / "model.safetensors").stat().st_size for f in folders}
    for f, s in zip(folders, m["sources"]):
        assert s["sha256"]["model.safetensors"] == hashlib.sha256((f / "model.safetensors").read_bytes()).hexdigest()


def test_read_only_stream_stays_within_ahead_of_the_engine_and_skips_what_it_read(tmp_path, small_windows,
                                                                                  monkeypatch):
    """A file whose digest is known is only read ahead: never past AHEAD in front of the engine's reads, never
    behind them (the engine has those pages already), and nothing is hashed."""
    f = _file(tmp_path, 2 * MB)
    steps: list[tuple[int, int, int]] = []
    real = readahead.FileStream.step

    def spy(self, fd, sink):
        lo = max(self.pos, self.frontier)
        real(self, fd, sink)
        steps.append((lo, self.pos, self.frontier))

    monkeypatch.setattr(readahead.FileStream, "step", spy)
    ra = readahead.ReadAhead()
    try:
        st = ra.add(f, digest=False)
        st.reached(0)  # nothing read yet: the thread starts on the file's first AHEAD bytes
        for end in (0, 100_000, 1_500_000):
            st.reached(end)
            deadline = time.monotonic() + 5
            # it gets to within a window (64 KiB) of AHEAD in front of the engine, and no further
            while st.pos <= end + (64 << 10) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05)
            assert end + (64 << 10) < st.pos <= min(st.size, end + (128 << 10))
        assert st._h is None
        assert all(lo >= fr and hi <= fr + (128 << 10) for lo, hi, fr in steps)
        assert steps[0][0] == 0 and any(lo == 1_500_000 for lo, _, _ in steps)  # jumped to the engine's point
    finally:
        ra.stop()


def test_a_file_in_the_page_cache_is_hashed_by_a_thread_a_cold_one_by_the_read_ahead(tmp_path, monkeypatch):
    """Warm files are hashed in parallel from the start (the read-ahead thread would hash them one at a time);
    cold ones in the read-ahead's single pass over the disk."""
    import os

    from basefuse.checkpoints.readahead import FileStream, in_page_cache

    monkeypatch.setattr(hashing, "in_page_cache", in_page_cache)
    warm, cold = _file(tmp_path, 3 * MB, seed=1), _file(tmp_path, 3 * MB, seed=2)
    fd = os.open(cold, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if in_page_cache(cold):
        pytest.skip("this filesystem keeps the file in memory (tmpfs?): cannot make a cold file")
    assert in_page_cache(warm)
    h = Hasher(use_cache=False)
    try:
        h.submit(warm, stream=True)
        h.submit(cold, stream=True)
        assert not isinstance(h._jobs[warm.resolve()], FileStream)
        assert isinstance(h._jobs[cold.resolve()], FileStream)
        for f in (warm, cold):
            assert h.digest(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    finally:
        h.close(save=False)


def test_a_failed_read_ahead_thread_leaves_no_one_waiting(tmp_path, small_windows, monkeypatch):
    """If the thread itself dies (here: /dev/null cannot be opened), the engine is not left waiting at MAX_LAG
    and the digest is an error, not a hang."""
    monkeypatch.setattr(readahead, "MAX_LAG", 64 << 10)

    def broken() -> int:
        raise OSError("no /dev/null")

    monkeypatch.setattr(readahead, "_null_sink", broken)
    f = _file(tmp_path, 1 * MB)
    h = Hasher(use_cache=False)
    try:
        h.submit(f, stream=True)
        done = threading.Event()
        t = threading.Thread(target=lambda: (h.watch(f)(1 * MB), done.set()), daemon=True)
        t.start()
        assert done.wait(5.0)
        with pytest.raises(BasefuseError, match="no /dev/null"):
            h.digest(f)
    finally:
        h.close(save=False)
