"""A real Hugging Face hub cache layout built from a local model folder, for tests that resolve hub ids offline."""
from __future__ import annotations

import shutil
from pathlib import Path


def add_to_hub_cache(cache: Path, repo_id: str, model: Path, commit: str) -> Path:
    """Put `model` into the hub cache folder `cache` as `repo_id` at `commit` (40 hex digits), with `refs/main`
    pointing at it, as `snapshot_download` leaves it; returns the snapshot folder."""
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    shutil.copytree(model, snap)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


def offline_hub(monkeypatch, cache: Path) -> None:
    """This process resolves hub ids from `cache` only (huggingface_hub reads these at call time)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
