"""A LoRA adapter (PEFT's folder: adapter_config.json + adapter weights) seen as a whole checkpoint of its base.

Every tensor of the base is presented; a tensor that the adapter changes is computed on the fly, for the rows a
reader asks for: W + scale * (B @ A) (transposed for embeddings and `fan_in_fan_out` layers), scale =
lora_alpha / r (lora_alpha / sqrt(r) with rsLoRA; `alpha_pattern` per module; r is the rank stored in the
tensors). A full tensor the adapter saved (`modules_to_save`) replaces the base's; one of a module the base does
not have (a task head, e.g. `classifier`) is left out and reported. So the fusion engine streams an adapter
like any checkpoint, one chunk of one tensor at a time, and never holds a merged model.

What this does not merge is refused by name (DoRA, LoRA biases, other PEFT methods), never half-applied.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from basefuse.checkpoints.safetensors_io import RangeReader, read_header, to_compute
from basefuse.checkpoints.source import Checkpoint
from basefuse.errors import BasefuseError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_WRAP = "base_model.model."
#: settings that change the merge formula; refused when set (value other than the neutral one)
_UNSUPPORTED = {"use_dora": False, "lora_bias": False, "layer_replication": None, "trainable_token_indices": None,
                "target_parameters": None, "use_qalora": False, "alora_invocation_tokens": None}


def is_adapter(folder: Path) -> bool:
    return (folder / ADAPTER_CONFIG).is_file()


@dataclass(frozen=True)
class LoraTensor:
    """A base tensor the adapter changes: its values are computed in float32."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Delta:
    """scale * (B @ A), kept factored; `transposed`: the base tensor holds (B @ A).T (embeddings, Conv1D)."""

    a: np.ndarray  # (r, n_in)
    b: np.ndarray  # (n_out, r)
    scale: float
    transposed: bool

    def rows(self, r0: int, r1: int) -> np.ndarray:
        """Rows [r0, r1) of the delta, in the base tensor's layout."""
        if self.transposed:
            return (self.a[:, r0:r1].T @ self.b.T) * np.float32(self.scale)
        return (self.b[r0:r1] @ self.a) * np.float32(self.scale)


@dataclass
class LoraCheckpoint(Checkpoint):
    base: Checkpoint | None = None
    deltas: dict[str, Delta] = field(default_factory=dict)
    replaced: dict[str, Any] = field(default_factory=dict)  # base key -> the adapter's own full tensor
    left_out: list[str] = field(default_factory=list)  # adapter tensors of modules the base lacks (heads)
    base_check: str = ""

    def view(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        assert self.base is not None
        if key not in self.deltas:  # the base's tensor, or the adapter's own full copy of it
            return super().view(key, start, stop)
        # W: the adapter's saved copy of the layer it wraps (`base_layer`, e.g. embeddings) if any, else the base's
        owner, info = (self, self.replaced[key]) if key in self.replaced else (self.base, self.base.tensors[key])
        cols = int(np.prod(info.shape[1:], dtype=np.int64)) if len(info.shape) > 1 else 1
        stop = info.numel if stop is None else stop
        r0, r1 = start // cols, -(-stop // cols)
        raw = owner._raw(info, r0 * cols, r1 * cols)
        w = to_compute(raw, info.dtype, np.float32).reshape(r1 - r0, cols)
        out = (w + self.deltas[key].rows(r0, r1).reshape(r1 - r0, cols)).reshape(-1)
        out = out[start - r0 * cols:stop - r0 * cols]
        out.flags.writeable = False
        return out


def _adapter_tensors(folder: Path) -> tuple[dict[str, Any], RangeReader | None, list[Path]]:
    st = folder / ADAPTER_WEIGHTS[0]
    if st.is_file():
        return read_header(st)[0], None, [st]
    binary = folder / ADAPTER_WEIGHTS[1]
    if binary.is_file():
        from basefuse.checkpoints.source import _load_bin

        return _load_bin(binary), None, [binary]
    raise BasefuseError(f"{folder}: an adapter folder without adapter_model.safetensors or adapter_model.bin; "
                        "save it with PEFT's save_pretrained")


def _read_all(reader: RangeReader, info: Any) -> np.ndarray:
    if hasattr(info, "tensor"):  # a .bin tensor (BinTensor)
        return info.tensor.float().numpy().reshape(info.shape)
    return to_compute(reader.view(info), info.dtype, np.float32).reshape(info.shape)


def _target(module: str, base: Checkpoint, suffix: str) -> str | None:
    """The base's key for `module.suffix`: as is, or across the head class's body prefix (`bert.` ...)."""
    from basefuse.checkpoints.heads import class_facts

    candidates = [f"{module}.{suffix}"]
    prefix = class_facts(base.model_type).prefix
    if prefix:
        if module.startswith(prefix + "."):
            candidates.append(f"{module[len(prefix) + 1:]}.{suffix}")
        else:
            candidates.append(f"{prefix}.{module}.{suffix}")
    return next((c for c in candidates if c in base.tensors), None)


def _alpha(cfg: dict[str, Any], module: str) -> float:
    for pattern, alpha in (cfg.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return float(alpha)
    return float(cfg.get("lora_alpha", 8))


def _check_base(folder: Path, cfg: dict[str, Any], base: Checkpoint, base_ref: str) -> str:
    """The adapter's recorded base against --base: by weights when its base can be found here, else by name."""
    from basefuse.finetuning.api import base_fingerprint

    named = cfg.get("base_model_name_or_path")
    if not named:
        return "not recorded in adapter_config.json: tensor shapes checked only"
    if str(named) == str(base_ref):
        return f"same name as --base ({named})"
    local = Path(named).expanduser()
    if local.is_dir():
        if base_fingerprint(str(local)) != base_fingerprint(str(base.path)):
            raise BasefuseError(f"{folder / ADAPTER_CONFIG}: the adapter was trained on {named}, whose weights "
                                f"differ from --base {base_ref}; give that model as --base")
        return f"weights of {named} equal to --base's"
    return f"{named} is not here to compare: tensor shapes checked only"


def load_adapter(ref: str, folder: Path, base: Checkpoint | None, base_ref: str | None) -> LoraCheckpoint:
    """Open an adapter folder against the base model it is merged into (headers and the small A/B factors)."""
    if base is None:
        raise BasefuseError(f"{folder}: a LoRA adapter is merged into its base model on the fly; pass --base (the "
                            "model the adapter was trained on)")
    try:
        cfg = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BasefuseError(f"{folder / ADAPTER_CONFIG}: not valid JSON; re-save the adapter") from None
    if not isinstance(cfg, dict) or str(cfg.get("peft_type", "")).upper() != "LORA":
        raise BasefuseError(f"{folder / ADAPTER_CONFIG}: peft_type {cfg.get('peft_type') if isinstance(cfg, dict) else None!r}"
                            "; only LoRA adapters can be merged (merge others with PEFT's merge_and_unload first)")
    for key, neutral in _UNSUPPORTED.items():
        if cfg.get(key, neutral) not in (neutral, {}, []):
            raise BasefuseError(f"{folder / ADAPTER_CONFIG}: {key}={cfg[key]!r} is not supported; merge this "
                                "adapter with PEFT's merge_and_unload and pass the merged model instead")
    tensors, _, weight_files = _adapter_tensors(folder)
    reader = RangeReader()
    check = _check_base(folder, cfg, base, str(base_ref))
    factors: dict[str, dict[str, Any]] = {}
    replaced: dict[str, Any] = {}
    left_out: list[str] = []
    for key, info in tensors.items():
        name = key.removeprefix(_WRAP)
        m = re.fullmatch(r"(.+)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.weight)?", name)
        if m:
            factors.setdefault(m.group(1), {})[m.group(2)] = info
            continue
        if ".lora_" in name:
            raise BasefuseError(f"{folder}: adapter tensor {key!r} is not a LoRA factor basefuse can merge (LoRA "
                                "biases?); merge with PEFT's merge_and_unload first")
        module, _, suffix = name.rpartition(".")
        module = module.replace(".modules_to_save", "").removesuffix(".base_layer")  # the wrapped layer's own copy
        target = _target(module, base, suffix)
        if target is None:
            left_out.append(key)  # a module only the adapter's model class has: a task head
        elif tuple(info.shape) != tuple(base.tensors[target].shape):
            raise BasefuseError(f"{folder}: adapter tensor {key!r} has shape {list(info.shape)} but the base's "
                                f"{target!r} has {list(base.tensors[target].shape)}; is --base the adapter's base?")
        else:
            replaced[target] = info
    deltas: dict[str, Delta] = {}
    fan_in_fan_out = bool(cfg.get("fan_in_fan_out", False))
    for module, pair in factors.items():
        embedding = "lora_embedding_A" in pair
        a_info, b_info = (pair.get("lora_embedding_A"), pair.get("lora_embedding_B")) if embedding \
            else (pair.get("lora_A"), pair.get("lora_B"))
        if a_info is None or b_info is None:
            raise BasefuseError(f"{folder}: module {module!r} has only one of its two LoRA factors; re-save the adapter")
        target = _target(module, base, "weight")
        if target is None:
            raise BasefuseError(f"{folder}: the adapter changes {module!r}, which --base does not have; is --base the "
                                "adapter's base model?")
        a, b = _read_all(reader, a_info), _read_all(reader, b_info)
        rank = a.shape[0]
        alpha = _alpha(cfg, module)
        scale = alpha / math.sqrt(rank) if cfg.get("use_rslora") else alpha / rank
        transposed = embedding or fan_in_fan_out
        shape = tuple(base.tensors[target].shape)
        want = (a.shape[1], b.shape[0]) if transposed else (b.shape[0], a.shape[1])
        if shape != want or b.shape[1] != rank:
            raise BasefuseError(f"{folder}: LoRA factors of {module!r} give a {list(want)} update but the base's "
                                f"{target!r} is {list(shape)}; is --base the adapter's base model?")
        deltas[target] = Delta(a=a, b=b, scale=scale, transposed=transposed)
    if not deltas and not replaced:
        raise BasefuseError(f"{folder}: the adapter changes no tensor of the base; check that it is a LoRA adapter "
                            "of --base")
    view_tensors = {k: (LoraTensor("F32", tuple(v.shape)) if k in deltas else v) for k, v in base.tensors.items()}
    for k, info in replaced.items():
        if k not in deltas:
            view_tensors[k] = info
    files = [folder / ADAPTER_CONFIG, *weight_files, *base.files]
    return LoraCheckpoint(name=ref, path=folder, config=dict(base.config), tensors=view_tensors, files=files,
                          _reader=reader, base=base, deltas=deltas, replaced=replaced, left_out=left_out,
                          base_check=check)
