"""One model reference (issue 19, item 1): every command resolves, reads and fingerprints a model the same way."""
from __future__ import annotations

import hashlib
import json
import os

from builders import save_base
from hub_cache import add_to_hub_cache, offline_hub

from basefuse.checkpoints.ref import resolve_ref
from basefuse.finetuning.api import base_fingerprint
from basefuse.models import resolve_model

COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


def _expected(folder) -> str:
    """The fingerprint by its definition: sha256 over `name:sha256(file)` lines of the weight files only."""
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    return "sha256:" + hashlib.sha256(f"model.safetensors:{digest}\n".encode()).hexdigest()


def test_hub_ids_revisions_and_folders_resolve_to_one_reference(tmp_path, monkeypatch):
    first, second = save_base(tmp_path / "m1", seed=1), save_base(tmp_path / "m2", seed=2)
    hub = tmp_path / "hub"
    add_to_hub_cache(hub, "org/tiny", first, COMMIT_A)
    snap_b = add_to_hub_cache(hub, "org/tiny", second, COMMIT_B)  # main now points at the second commit
    offline_hub(monkeypatch, hub)
    latest, pinned = resolve_ref("org/tiny"), resolve_ref(f"org/tiny@{COMMIT_A}")
    assert (latest.hub_id, latest.commit, latest.folder) == ("org/tiny", COMMIT_B, snap_b)
    assert (pinned.commit, pinned.revision) == (COMMIT_A, COMMIT_A)
    assert pinned.fingerprint() == _expected(first) and latest.fingerprint() == _expected(second)
    # finetune/probe resolve the same way, and fingerprint the weights, never "hub:id@unknown"
    assert resolve_model("org/tiny") == str(snap_b)
    assert base_fingerprint("org/tiny") == base_fingerprint(str(second)) == _expected(second)
    local = resolve_ref(str(first))
    assert (local.folder, local.hub_id, local.commit) == (first, None, None)


def test_fingerprint_is_of_the_weights_only_from_the_one_digest_cache(tmp_path):
    folder = save_base(tmp_path / "m", seed=3)
    before = base_fingerprint(str(folder))
    assert before == _expected(folder)
    (folder / "training_args.bin").write_bytes(os.urandom(64))  # lying beside the weights: not part of them
    (folder / "optimizer.pt").write_bytes(os.urandom(64))
    assert base_fingerprint(str(folder)) == before
    from basefuse.checkpoints.hashing import CACHE_NAME
    from basefuse.io import cache_dir

    stored = json.loads((cache_dir() / CACHE_NAME).read_text())
    weights = str((folder / "model.safetensors").resolve())
    assert stored[weights][3] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def _shard_as_bin(folder, out):
    """The model of `folder` re-saved as two torch.save shards with a pytorch_model.bin.index.json."""
    import shutil

    import torch
    from safetensors.torch import load_file

    out.mkdir()
    shutil.copy(folder / "config.json", out / "config.json")
    state = load_file(str(folder / "model.safetensors"))
    keys = sorted(state)
    halves = {"pytorch_model-00001-of-00002.bin": keys[: len(keys) // 2],
              "pytorch_model-00002-of-00002.bin": keys[len(keys) // 2:]}
    for name, part in halves.items():
        torch.save({k: state[k] for k in part}, out / name)
    (out / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: name for name, part in halves.items() for k in part}}))
    return state


def test_a_sharded_bin_model_is_read_alike_by_every_command(tmp_path):
    import torch

    from basefuse.fusion.api import fuse
    from basefuse.models import is_model_folder

    a = _shard_as_bin(save_base(tmp_path / "a", seed=1), tmp_path / "a-bin")
    b = _shard_as_bin(save_base(tmp_path / "b", seed=1), tmp_path / "b-bin")  # same seed: b = a, so add noise below
    b = {k: v + 0.01 * torch.ones_like(v) if v.is_floating_point() else v for k, v in b.items()}
    torch.save({k: b[k] for k in sorted(b)[: len(b) // 2]}, tmp_path / "b-bin" / "pytorch_model-00001-of-00002.bin")
    torch.save({k: b[k] for k in sorted(b)[len(b) // 2:]}, tmp_path / "b-bin" / "pytorch_model-00002-of-00002.bin")
    assert is_model_folder(tmp_path / "a-bin")  # finetune's check and fuse's reader agree
    shards = sorted((tmp_path / "a-bin").glob("*.bin"))
    lines = "".join(f"{f.name}:{hashlib.sha256(f.read_bytes()).hexdigest()}\n" for f in shards)
    assert base_fingerprint(str(tmp_path / "a-bin")) == "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    fuse([tmp_path / "a-bin", tmp_path / "b-bin"], tmp_path / "out", progress=False, allow_unrelated=True)
    from safetensors.torch import load_file

    fused = load_file(str(tmp_path / "out" / "model.safetensors"))
    for k, v in fused.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (a[k] + b[k]) / 2)
