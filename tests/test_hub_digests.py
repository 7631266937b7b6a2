"""Digests of files in the Hugging Face Hub cache come from the blob's name (the LFS sha256), not from hashing.

The first test builds the cache's layout by hand (each case the layout can take); the second downloads models
with huggingface_hub itself from the local Hub server (`hub_server.py`, which sends an LFS file's sha256 as its
ETag, as the Hub does), fuses them, and checks fusion.json against sha256 computed here with hashlib."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from basefuse.checkpoints.hashing import Hasher, hub_blob_sha256
from builders import make_family
from hub_server import run, running_hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cached(repo: Path, name: str, data: bytes, blob: str) -> Path:
    """`repo/snapshots/COMMIT/name` linking to `../../blobs/blob`, as huggingface_hub lays a download out."""
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "blobs" / blob).write_bytes(data)
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    (snap / name).symlink_to(Path("..") / ".." / "blobs" / blob)
    return snap / name


def test_blob_name_is_the_digest_only_for_an_lfs_blob_of_a_hub_cache(tmp_path, isolated_cache):
    repo = tmp_path / "hub" / "models--org--m"
    weights = b"weights" * 1000
    real = hashlib.sha256(weights).hexdigest()
    lfs = _cached(repo, "model.safetensors", weights, real)
    # a blob named by a sha256 that is not its content's: the name is trusted, nothing is hashed
    claimed = "ab" * 32
    trusted = _cached(repo, "other.safetensors", b"other", claimed)
    git = _cached(repo, "config.json", b"{}", "d" * 40)        # a small git file: named by its 40-hex git id
    assert hub_blob_sha256(lfs) == real and hub_blob_sha256(trusted) == claimed
    assert hub_blob_sha256(git) is None
    assert hub_blob_sha256(repo / "blobs" / real) == real      # the blob itself, reached by a resolved path

    copy = tmp_path / "copy" / real                             # same name, not in a hub repo folder
    copy.parent.mkdir()
    copy.write_bytes(weights)
    assert hub_blob_sha256(copy) is None
    (repo / "refs").mkdir()                                     # in a repo folder, but not a blob
    (repo / "refs" / real).write_bytes(weights)
    assert hub_blob_sha256(repo / "refs" / real) is None
    (tmp_path / "elsewhere" / "blobs").mkdir(parents=True)     # a blobs folder outside a repo folder
    (tmp_path / "elsewhere" / "blobs" / real).write_bytes(weights)
    assert hub_blob_sha256(tmp_path / "elsewhere" / "blobs" / real) is None
    # a blob that links on into the shared Xet store: still its own (sha256) name, one link followed only
    xet = tmp_path / "hub" / "blobs" / "ff" / ("e" * 64)
    xet.parent.mkdir(parents=True)
    xet.write_bytes(b"xet content")
    (repo / "blobs" / ("c" * 64)).symlink_to(xet)
    (repo / "snapshots" / COMMIT / "x.safetensors").symlink_to(Path("..") / ".." / "blobs" / ("c" * 64))
    assert hub_blob_sha256(repo / "snapshots" / COMMIT / "x.safetensors") == "c" * 64

    h = Hasher()
    for f in (lfs, trusted, git):
        h.submit(f)
    assert h.digest(trusted) == claimed and h.digest(lfs) == real
    assert h.digest(git) == hashlib.sha256(b"{}").hexdigest()    # hashed as usual
    assert h.is_from_hub(lfs) and h.is_from_hub(trusted) and not h.is_from_hub(git)
    h.close()


@pytest.fixture
def hub(tmp_path):
    """A running local Hub: (its URL, the environment a child process needs to use it)."""
    with running_hub(tmp_path) as found:
        yield found


@pytest.mark.slow  # ~25 s: three uploads and two fusions in child processes
def test_fusing_hub_downloads_takes_weight_digests_from_the_hub_cache(tmp_path, hub):
    url, env = hub
    base, srcs = make_family(tmp_path / "local", 2, "bert", labels=(2, 3))
    up = ("import sys; from huggingface_hub import HfApi; api = HfApi(); api.create_repo(sys.argv[2], exist_ok=True);"
          " api.upload_folder(repo_id=sys.argv[2], folder_path=sys.argv[1])")
    for name, folder in [("base", base), ("ft0", srcs[0]), ("ft1", srcs[1])]:
        done = run(["-c", up, folder, f"org/{name}"], env)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "fused"
    done = run(["-m", "basefuse", "fuse", "org/ft0", "org/ft1", "--base", "org/base", "--out", out,
                 "--no-progress"], env)
    assert done.returncode == 0, done.stderr
    m = json.loads((out / "fusion.json").read_text())
    for entry, folder in [(m["sources"][0], srcs[0]), (m["sources"][1], srcs[1]), (m["base"], base)]:
        assert entry["sha256_from_hub_cache"] == ["model.safetensors"]   # config.json: a git file, hashed here
        for name in ("model.safetensors", "config.json"):
            assert entry["sha256"][name] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    # a local folder's digests are computed, and say so
    done = run(["-m", "basefuse", "fuse", *srcs, "--out", tmp_path / "local-out", "--no-progress"], env)
    assert done.returncode == 0, done.stderr
    m = json.loads((tmp_path / "local-out" / "fusion.json").read_text())
    assert [e["sha256_from_hub_cache"] for e in m["sources"]] == [[], []]
