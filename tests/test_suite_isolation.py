"""The suite runs against a private cache: basefuse's cache, the sha256 cache and HF's caches all resolve
into the session's temporary folder (conftest.py), never into the user's. conftest also fails the run if
the user's cache changed by the end."""
from __future__ import annotations

import os
from pathlib import Path

from builders import user_cache


def test_caches_resolve_into_the_session_folder(tmp_path_factory):
    from basefuse.checkpoints.hashing import CACHE_NAME, Hasher
    from basefuse.io import cache_dir

    real = Path(os.path.expanduser("~/.cache/basefuse")).resolve()
    ours = cache_dir().resolve()
    assert ours != real and not ours.is_relative_to(real)
    assert ours.name == "cache" and ours.parent.name.startswith("basefuse-tests-")
    assert Path(os.environ["HF_HOME"]).resolve().parent == ours.parent
    f = tmp_path_factory.mktemp("hashed") / "w.safetensors"
    f.write_bytes(b"x" * 10)
    h = Hasher(use_cache=True)
    h.submit(f)
    h.digest(f)
    h.close()
    assert str(f.resolve()) in (ours / CACHE_NAME).read_text()
    assert user_cache() == ours  # what a test sees as "the cache" is the private one


def test_hf_hub_uses_the_session_folder():
    from huggingface_hub import constants

    assert Path(constants.HF_HOME).resolve() == Path(os.environ["HF_HOME"]).resolve()
