"""sha256 of input files for the manifest, with a cache keyed like git's index (path, size, mtime, inode).

Hashing every byte of N large checkpoints costs more CPU than fusing them; fusing the same
finetunes again (an experiment fuses each family and all of them) should not pay it twice.
A file that changed in any of those four facts is hashed again. A file downloaded from the Hub
needs no hashing at all: huggingface_hub names an LFS file's blob after its sha256 (the LFS object
id the Hub sends as the file's ETag), and the snapshot entry links to that blob.

A safetensors file the fusion will read and that is not in the page cache is hashed by the thread that
reads it just ahead of the fusion (`checkpoints.readahead`): one pass over the disk, not a hash thread and
the engine each pulling the same file from different places (issue 19, cold page cache).
"""
from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from basefuse.checkpoints.layout import find_layout
from basefuse.checkpoints.readahead import FileStream, ReadAhead, in_page_cache
from basefuse.errors import BasefuseError
from basefuse.io import cache_dir, sha256_file, write_json

CACHE_NAME = "sha256-cache.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPO_FOLDER = ("models--", "datasets--", "spaces--")


def hub_blob_sha256(path: Path) -> str | None:
    """The sha256 of a file in the Hugging Face Hub cache, read from its blob's name; None elsewhere.

    The cache keeps `<repo folder>/snapshots/<commit>/<file>` as a link to `../../blobs/<ETag>`, and for an LFS
    file (every weight file) the ETag is its sha256; small git files are named by a 40-hex git id instead, so
    they do not match. Only the snapshot's own link is followed: a blob may itself link on into the shared Xet
    store, whose names are Xet hashes. A copy outside the cache, or a cache without links, is hashed as usual.
    """
    p = Path(path)
    # normpath, not resolve(): `snapshots/C/f -> ../../blobs/X` must not be followed past the blob
    target = Path(os.path.normpath(p.parent / os.readlink(p))) if p.is_symlink() else p
    if (_SHA256.fullmatch(target.name) and target.parent.name == "blobs"
            and target.parent.parent.name.startswith(_REPO_FOLDER) and target.is_file()):
        return target.name
    return None


def _stamp(p: Path) -> list[int]:
    st = p.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


class Hasher:
    """Hashes files in a background thread while the fusion runs; `digest(path)` waits for one."""

    def __init__(self, use_cache: bool = True) -> None:
        # files are independent: hash them on every free core once the fusion is done
        self._pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                        thread_name_prefix="basefuse-sha256")
        self._jobs: dict[Path, Future[str] | FileStream | str] = {}
        self._streams = ReadAhead()
        self.from_hub: set[Path] = set()  # digests read from the Hub cache's blob names, not computed
        self._done: set[Path] = set()     # streamed files hashed to the end (their digest is new: cache it)
        self._ahead: dict[Path, FileStream] = {}  # files whose digest is known, read ahead of the fusion only
        self._stop = threading.Event()   # set by close(): running hashes end at their next window
        self._cache_path = cache_dir() / CACHE_NAME if use_cache else None
        self._cache: dict[str, list] = {}
        if self._cache_path is not None and self._cache_path.is_file():
            try:
                self._cache = json.loads(self._cache_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._cache = {}

    def submit(self, path: Path, stream: bool = False) -> None:
        """Start on `path`'s digest: from the Hub cache's blob name, the digest cache, or by hashing it.

        `stream`: a file the fusion will read; a .safetensors one that is not in the page cache is
        hashed by the read-ahead thread as it brings the file in for the fusion (`FileStream`, fed by `watch`):
        one pass over the disk. A file already in memory is hashed by a thread of its own instead, so the
        files are hashed in parallel, from before the fusion starts (N=5 BERT-base fp32, warm: 1.20 s against
        1.44 s for the whole `basefuse fuse` in one thread).
        """
        hub = hub_blob_sha256(Path(path))
        path = Path(path).resolve()
        if path in self._jobs:
            return
        if hub is not None:
            self._jobs[path] = hub
            self.from_hub.add(path)
            return
        hit = self._cache.get(str(path))
        if hit and hit[:3] == _stamp(path):
            self._jobs[path] = hit[3]
        elif stream and path.suffix == ".safetensors" and not in_page_cache(path):
            self._jobs[path] = self._streams.add(path, digest=True)
        else:
            self._jobs[path] = self._pool.submit(sha256_file, path, stop=self._stop)

    def watch(self, path: Path) -> Callable[[int], None]:
        """The callback a reader of `path` calls with the end of each range it maps: the file is read (and, if
        its digest is still wanted, hashed) just ahead of those reads."""
        path = Path(path).resolve()
        job = self._jobs.get(path)
        if isinstance(job, FileStream):
            return job.reached
        if path not in self._ahead:  # digest known (cache, Hub): read ahead only
            self._ahead[path] = self._streams.add(path, digest=False)
        return self._ahead[path].reached

    def submit_folder(self, ref: str | Path) -> None:
        """Start on the files a local model folder is read from (config, index, weights), largest first.

        Called before the fusion's heavy imports, so hashing (the costliest part of a cold run) overlaps
        them. A hub id or a broken folder is skipped here: loading it reports the problem.
        """
        try:
            files = find_layout(Path(ref)).files
        except BasefuseError:
            return
        for f in sorted(files, key=lambda f: -f.stat().st_size):
            self.submit(f, stream=True)

    def digest(self, path: Path) -> str:
        path = Path(path).resolve()
        job = self._jobs[path]
        if isinstance(job, FileStream):
            self._jobs[path] = self._streams.finish(job)
            self._done.add(path)
            return self._jobs[path]  # type: ignore[return-value]
        return job if isinstance(job, str) else job.result()

    def is_from_hub(self, path: Path) -> bool:
        """Whether `path`'s digest is the Hub cache's blob name rather than computed here."""
        return Path(path).resolve() in self.from_hub

    def close(self, save: bool = True) -> None:
        """Stop the hashing; with `save`, keep every finished digest in the cache.

        Unless saving, hashes still running are stopped (after an error or Ctrl-C nobody needs them).
        """
        if not save:
            self._stop.set()
        self._streams.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if not save or self._cache_path is None:
            return
        changed = False
        for path, job in self._jobs.items():
            if isinstance(job, Future) and job.done() and not job.cancelled() and job.exception() is None:
                self._cache[str(path)] = [*_stamp(path), job.result()]
                changed = True
            elif path in self._done and isinstance(job, str):
                self._cache[str(path)] = [*_stamp(path), job]
                changed = True
        if changed:
            try:
                write_json(self._cache_path, self._cache)
            except OSError:
                pass  # a cache we cannot write only costs time next run


_MEMO: dict[tuple[str, int, int, int], str] = {}
_MEMO_LOCK = threading.Lock()


def file_digests(paths: list[Path]) -> dict[Path, str]:
    """sha256 of each file (keyed by its resolved path) from the same on-disk cache a fusion uses, and a memo of
    this process: an experiment fingerprints the same base for every job it plans and runs."""
    out: dict[Path, str] = {}
    todo: list[Path] = []
    for p in paths:
        r = Path(p).resolve()
        hit = _MEMO.get((str(r), *_stamp(r)))
        if hit is not None:
            out[r] = hit
        else:
            todo.append(r)
    if todo:
        hasher = Hasher()
        try:
            for r in todo:
                hasher.submit(r)
            for r in todo:
                out[r] = hasher.digest(r)
        finally:
            hasher.close(save=True)
        with _MEMO_LOCK:
            for r in todo:
                _MEMO[(str(r), *_stamp(r))] = out[r]
    return out
