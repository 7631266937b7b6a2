"""The sha256 cache never hands out the digest of a file's old content.

It is keyed like git's index by (path, size, mtime, inode); each fact is changed alone here,
the others kept, and the digest must follow the new content.
"""
from __future__ import annotations

import hashlib
import os

from basefuse.checkpoints.hashing import Hasher


def digest_via_cache(path) -> str:
    h = Hasher(use_cache=True)
    h.submit(path)
    d = h.digest(path)
    h.close()
    return d


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cache_hit_then_each_changed_fact_rehashes(tmp_path, monkeypatch):
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"A" * 64)
    first = digest_via_cache(f)
    assert first == sha(f)
    st = f.stat()

    # same content again: served from the cache (the cache file lists it)
    assert digest_via_cache(f) == first and str(f.resolve()) in (tmp_path / "cache" / "sha256-cache.json").read_text()

    # 1. same size, same inode, content rewritten in place, mtime moved on by 1 s
    with open(f, "r+b") as fh:
        fh.write(b"B")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert f.stat().st_ino == st.st_ino and f.stat().st_size == st.st_size
    second = digest_via_cache(f)
    assert second == sha(f) != first

    # 2. same size, same mtime, new inode (written elsewhere and renamed over it)
    st2 = f.stat()
    tmp = tmp_path / "new"
    tmp.write_bytes(b"C" * 64)
    os.replace(tmp, f)
    os.utime(f, ns=(st2.st_atime_ns, st2.st_mtime_ns))
    assert f.stat().st_ino != st2.st_ino and f.stat().st_mtime_ns == st2.st_mtime_ns
    third = digest_via_cache(f)
    assert third == sha(f) != second

    # 3. same inode, same mtime, another size
    st3 = f.stat()
    with open(f, "ab") as fh:
        fh.write(b"D")
    os.utime(f, ns=(st3.st_atime_ns, st3.st_mtime_ns))
    assert f.stat().st_ino == st3.st_ino and f.stat().st_mtime_ns == st3.st_mtime_ns
    assert digest_via_cache(f) == sha(f) != third
