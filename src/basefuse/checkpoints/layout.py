"""Which files a model folder is read from (config, index, weight files), with the errors for a broken one.

Kept free of numpy so `basefuse fuse` can list, and start hashing, the exact files it will read
before its heavy imports; `load_checkpoint` reads through the same layout.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from basefuse.errors import BasefuseError


@dataclass(frozen=True)
class Layout:
    config: Path
    weights: list[Path]                       # safetensors or .bin shards, model.safetensors, or pytorch_model.bin
    index: Path | None = None                 # model.safetensors.index.json (pytorch_model.bin.index.json) when sharded
    weight_map: dict[str, str] | None = None  # tensor name -> shard file name, when sharded

    @property
    def files(self) -> list[Path]:
        """Every file the checkpoint is read from, in the order the manifest lists them."""
        return [self.config, *([self.index] if self.index else []), *self.weights]


def find_layout(folder: Path) -> Layout:
    """Sharded safetensors (with an index) first, then model.safetensors, then sharded .bin (with an index), then
    pytorch_model.bin: the order transformers prefers them in."""
    config = folder / "config.json"
    if not config.is_file():
        if (folder / "adapter_config.json").is_file():
            raise BasefuseError(f"{folder}: a LoRA adapter, not a whole model; `basefuse fuse` takes it as a source "
                                "with --base (its base model), or merge it with PEFT's merge_and_unload first")
        if (folder / "model" / "config.json").is_file():
            raise BasefuseError(f"{folder}: no config.json here, but {folder / 'model'} holds a model (`basefuse "
                                "finetune --save` writes the model there): pass that folder")
        raise BasefuseError(f"{folder}: no config.json; pass a Hugging Face model folder saved by save_pretrained")
    for index in (folder / "model.safetensors.index.json", folder / "pytorch_model.bin.index.json"):
        if index.is_file():
            return _sharded(folder, config, index)
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return Layout(config, [folder / name])
    raise BasefuseError(f"{folder}: no model.safetensors, pytorch_model.bin or a sharded index "
                        "(model.safetensors.index.json, pytorch_model.bin.index.json)")


def _sharded(folder: Path, config: Path, index: Path) -> Layout:
    """The shards an index names (each a plain file name inside the folder, present), and which tensor is where."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, KeyError, TypeError, AttributeError):
        raise BasefuseError(f"{index}: corrupt index (no weight_map); re-download or re-save the model") from None
    for shard in shards:
        # refused before anything is hashed or read: the index names files, and a name may point anywhere
        if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
            raise BasefuseError(f"{index}: shard {shard!r} is not a file name inside {folder} (no folders, "
                                "no '..'); re-download the model or fix the index")
        if not (folder / shard).is_file():
            raise BasefuseError(f"{folder / shard}: shard listed in {index.name} is missing; re-download the model")
    return Layout(config, [folder / s for s in shards], index, weight_map)
