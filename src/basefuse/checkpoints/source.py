"""One checkpoint: a local folder (or hub id) with config.json and its weight files.

Only config.json is read as JSON and tensor headers are parsed; no transformers import, so
the fusion path starts fast.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from basefuse.checkpoints.layout import find_layout
from basefuse.checkpoints.ref import resolve_ref, snapshot_origin
from basefuse.checkpoints.safetensors_io import DTYPES, RangeReader, TensorInfo, read_header
from basefuse.errors import BasefuseError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "vocab.json", "merges.txt", "added_tokens.json", "spiece.model", "tokenizer.model",
                   "sentencepiece.bpe.model")


@dataclass(frozen=True)
class BinTensor:
    """A tensor of a `pytorch_model.bin`, already loaded (memory-mapped) by torch."""

    tensor: Any
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


_TORCH_TO_ST = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64",
                "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


@dataclass
class Checkpoint:
    name: str
    path: Path
    config: dict[str, Any]
    tensors: dict[str, TensorInfo | BinTensor]
    files: list[Path] = field(default_factory=list)
    hub_id: str | None = None    # `org/name` when the folder came from the Hugging Face hub (or is a built-in)
    commit: str | None = None    # the hub commit the folder holds, resolved from the revision asked for
    _reader: RangeReader = field(default_factory=RangeReader, repr=False)

    @property
    def model_type(self) -> str | None:
        return self.config.get("model_type")

    @property
    def prefix(self) -> str | None:
        """The body prefix (`bert`, `transformer`, ...) if this checkpoint is a head model."""
        from basefuse.checkpoints.heads import class_facts

        known = class_facts(self.model_type).prefix  # the model classes' own `base_model_prefix`
        if known and any(k.startswith(known + ".") for k in self.tensors):
            return known
        if known:
            return None
        # Unknown family: a first component shared by most keys is the body prefix.
        firsts: dict[str, int] = {}
        for k in self.tensors:
            if "." in k:
                firsts[k.split(".", 1)[0]] = firsts.get(k.split(".", 1)[0], 0) + 1
        if firsts:
            top, count = max(firsts.items(), key=lambda kv: kv[1])
            if count >= 0.5 * len(self.tensors) and count < len(self.tensors):
                return top
        return None

    def read(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Flat raw elements [start, stop) of tensor `key` (BF16 as uint16 bits), a private copy."""
        return self.view(key, start, stop).copy()

    def view(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Read-only flat raw elements [start, stop) without a copy; hold it only while needed."""
        return self._raw(self.tensors[key], start, stop)

    def _raw(self, info: "TensorInfo | BinTensor", start: int = 0, stop: int | None = None) -> np.ndarray:
        if isinstance(info, BinTensor):
            import torch

            flat = info.tensor.reshape(-1)[start:stop]
            raw = flat.view(torch.int16).numpy().view(np.uint16) if info.dtype == "BF16" else flat.numpy()
            raw = raw.view()
            raw.flags.writeable = False
            return raw
        return self._reader.view(info, start, stop)

    def watch_reads(self, watcher: Callable[[Path], Callable[[int], None]]) -> None:
        """Report every range mapped from a safetensors file to `watcher(file)`'s callback (the read-ahead that
        brings the file in just before the fusion reads it, hashing it there when it was not in memory)."""
        for f in sorted({info.file for info in self.tensors.values() if isinstance(info, TensorInfo)}):
            self._reader.on_read[f] = watcher(f)

    def close(self) -> None:
        self._reader.close()


def hub_origin(spec: str, folder: Path) -> tuple[str | None, str | None]:
    """(hub id, commit) of a resolved model: a built-in's upstream id, or a folder of the hub cache."""
    from basefuse.models import BUILTIN_MODELS

    if spec in BUILTIN_MODELS:
        return BUILTIN_MODELS[spec].hub_id, None
    return snapshot_origin(folder)


def resolve(ref: str | Path, revision: str | None = None) -> Path:
    """The folder a model reference is read from (`checkpoints.ref.resolve_ref`)."""
    return resolve_ref(ref, revision).folder


def _load_bin(path: Path) -> dict[str, BinTensor]:
    import pickle
    import zipfile

    import torch

    if not zipfile.is_zipfile(path):
        # torch.save's legacy (pre-1.6) format: it cannot be memory-mapped, and reading it whole defeats the
        # flat-memory streaming; say how to convert it rather than report a RuntimeError
        raise BasefuseError(f"{path}: not in torch.save's zip format (a legacy torch.save file, or corrupt); "
                            "convert it: torch.save(torch.load(PATH, weights_only=True), PATH) with torch >= 1.6, "
                            "or save the model as safetensors (save_pretrained)")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise BasefuseError(f"{path}: needs full unpickling (arbitrary code), which basefuse refuses; convert it "
                            "to safetensors with a trusted tool, or re-save the model with save_pretrained") from None
    except Exception as e:
        raise BasefuseError(f"{path}: cannot read as a torch checkpoint ({type(e).__name__}); "
                            "re-download or re-save it") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    out: dict[str, BinTensor] = {}
    for k, t in sd.items():
        if not isinstance(t, torch.Tensor):
            continue
        name = str(t.dtype).removeprefix("torch.")
        if name not in _TORCH_TO_ST:
            raise BasefuseError(f"{path}: tensor {k!r} has unsupported dtype {name}")
        out[k] = BinTensor(t.contiguous(), _TORCH_TO_ST[name], tuple(t.shape))
    return out


def load_checkpoint(ref: str | Path) -> Checkpoint:
    """Open a checkpoint without reading tensor data (headers only); `org/name@rev` pins a hub revision."""
    model = resolve_ref(ref)
    folder = model.folder
    layout = find_layout(folder)
    try:
        config = json.loads(layout.config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise BasefuseError(f"{layout.config}: not valid JSON; re-save the model") from None
    if not isinstance(config, dict):
        raise BasefuseError(f"{layout.config}: holds a JSON {type(config).__name__}, not an object of model "
                            "settings; re-save the model with save_pretrained")
    tensors: dict[str, TensorInfo | BinTensor] = {}
    if layout.weight_map is not None:
        for sp in layout.weights:
            header = read_header(sp)[0] if sp.suffix == ".safetensors" else _load_bin(sp)
            tensors.update((k, info) for k, info in header.items() if layout.weight_map.get(k) == sp.name)
        missing = [k for k in layout.weight_map if k not in tensors]
        if missing:
            raise BasefuseError(f"{layout.index}: tensor {missing[0]!r} is listed but not in its shard "
                                f"{layout.weight_map[missing[0]]}; re-download the model")
    elif layout.weights[0].suffix == ".safetensors":
        tensors.update(read_header(layout.weights[0])[0])
    else:
        tensors.update(_load_bin(layout.weights[0]))
    if not tensors:
        raise BasefuseError(f"{folder}: the checkpoint holds no tensors")
    hub_id, commit = model.hub_id, model.commit
    return Checkpoint(name=str(ref), path=folder, config=config, tensors=tensors, files=layout.files, hub_id=hub_id,
                      commit=commit)


def itemsize(dtype: str) -> int:
    return DTYPES[dtype][1]
