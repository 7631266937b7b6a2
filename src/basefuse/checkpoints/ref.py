"""One model reference: what a user names (a folder, a hub id, `org/name@revision`, a built-in model) resolved once
to the folder it is read from, where it came from (hub id and the exact commit, or the built-in's name) and the
fingerprint of its weights.

Every command and the experiments resolve models here, read them through one layout (`checkpoints.layout`) and
fingerprint them with one digest cache (`checkpoints.hashing`), so `finetune`, `probe`, `fuse` and an experiment
agree on what a model is. A hub id resolves offline-aware: with `HF_HUB_OFFLINE=1` straight from the hub cache;
otherwise the hub is asked (huggingface_hub's timeouts: seconds when there is no network) and the hub cache answers
when it cannot be reached.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from basefuse.errors import BasefuseError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # org/name, or a legacy bare name
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
#: what a model folder is fetched with from the hub: weights, config, tokenizer, adapter files, its card (licence)
HUB_PATTERNS = ("config.json", "*.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "generation_config.json", "adapter_config.json", "adapter_model.bin", "README.md")


@dataclass(frozen=True)
class ModelRef:
    spec: str                    # as given
    folder: Path                 # where it is read from
    hub_id: str | None = None    # `org/name` for a hub model (a built-in's upstream id)
    revision: str | None = None  # the revision asked for (`@rev`)
    commit: str | None = None    # the hub commit the folder holds
    builtin: str | None = None   # a built-in model's name

    def fingerprint(self) -> str:
        return weights_fingerprint(self.folder)


def split_revision(spec: str) -> tuple[str, str | None]:
    """`org/name@rev` -> (`org/name`, `rev`); a local path (which may hold an @) is left whole."""
    if Path(spec).expanduser().exists() or "@" not in spec:
        return spec, None
    name, _, rev = spec.rpartition("@")
    return name, rev or None


def snapshot_origin(folder: str | Path) -> tuple[str | None, str | None]:
    """(hub id, commit) of a folder of the hub cache (`.../models--org--name/snapshots/<commit>`), else (None, None)."""
    p = Path(folder)
    p = p.resolve() if p.is_symlink() else p
    repo = p.parent.parent.name
    if p.parent.name != "snapshots" or not repo.startswith("models--") or not _COMMIT.match(p.name):
        return None, None
    return repo.removeprefix("models--").replace("--", "/"), p.name


def _fetch(hub_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    from basefuse.checkpoints.source import TOKENIZER_FILES

    from huggingface_hub import constants

    patterns = [*HUB_PATTERNS, *TOKENIZER_FILES]
    offline = bool(constants.HF_HUB_OFFLINE)  # HF_HUB_OFFLINE=1, read by huggingface_hub
    try:
        return Path(snapshot_download(hub_id, allow_patterns=patterns, revision=revision, local_files_only=offline))
    except Exception as e:  # offline, unknown repo, auth...: all user-fixable
        if not offline:
            try:  # no network but the model already in the hub cache: use that copy
                return Path(snapshot_download(hub_id, allow_patterns=patterns, revision=revision,
                                              local_files_only=True))
            except Exception:
                pass
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        where = "is not in the hub cache (HF_HUB_OFFLINE is set)" if offline else \
            "could not be fetched from the Hugging Face hub"
        rev = f" at revision {revision}" if revision else ""
        raise BasefuseError(f"{hub_id}{rev}: not a local folder and {where} ({type(e).__name__}: {msg[:160]}); "
                            "check the id and network, or pass a local folder") from None


def resolve_ref(spec: str | Path, revision: str | None = None) -> ModelRef:
    """Resolve a model reference once (`org/name@rev` pins a revision unless `revision` is given)."""
    from basefuse.models import BUILTIN_MODELS, resolve_model

    text = str(spec)
    if text in BUILTIN_MODELS:  # extracted from its wheel into the cache
        return ModelRef(text, Path(resolve_model(text)), hub_id=BUILTIN_MODELS[text].hub_id, builtin=text)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BasefuseError(f"{path}: expected a model folder (with config.json), got a file")
        hub_id, commit = snapshot_origin(path)
        return ModelRef(text, path, hub_id=hub_id, commit=commit)
    name, asked = split_revision(text)
    revision = revision or asked
    if not _HUB_ID.match(name):
        raise BasefuseError(f"{text}: no such folder; pass a local model folder, a built-in model "
                            f"({', '.join(BUILTIN_MODELS)}) or a hub id like org/name[@revision]")
    folder = _fetch(name, revision)
    _, commit = snapshot_origin(folder)
    return ModelRef(text, folder, hub_id=name, revision=revision, commit=commit)


def weights_fingerprint(folder: str | Path) -> str:
    """sha256 over the weight files the model is read from (its layout: never a training_args.bin or an optimizer
    state lying beside them), each file's digest from the one digest cache."""
    from basefuse.checkpoints.hashing import file_digests
    from basefuse.checkpoints.layout import find_layout

    weights = sorted(find_layout(Path(folder)).weights, key=lambda f: f.name)
    digests = file_digests(weights)
    h = hashlib.sha256()
    for f in weights:
        h.update(f"{f.name}:{digests[f.resolve()]}\n".encode())
    return "sha256:" + h.hexdigest()
