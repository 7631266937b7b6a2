"""Pooled features of a frozen base, cached on disk per (base weights, task data, split, max_length, pooling).

Extraction is the only costly part of a linear probe: a second probe of the same base and task (another seed,
another C grid, another train budget) reads the cache and runs no forward pass. A cache file is trusted only if
its stored key, row count and text hash match and every value is finite; anything else is recomputed.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from basefuse.errors import BasefuseError
from basefuse.io import cache_dir, temp_name

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

FEATURES_FORMAT = "basefuse-features-v1"


def split_text_hash(ds: "Dataset") -> str:
    """sha256 over a split's texts (and pairs): binds a cache file to the rows it was computed from."""
    cols = ds[:]
    h = hashlib.sha256()
    for key in ("text", "text_pair"):
        if key in cols:
            h.update(key.encode())
            for t in cols[key]:
                h.update(str(t).encode("utf-8"))
                h.update(b"\x1f")
    return h.hexdigest()


def cache_key(*, base_fp: str, task_fp: str, split: str, max_length: int, pooling: str) -> dict[str, Any]:
    return {"format": FEATURES_FORMAT, "base_fingerprint": base_fp, "task_fingerprint": task_fp, "split": split,
            "max_length": max_length, "pooling": pooling}


def cache_path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "features" / f"{key['split']}-{key['pooling']}-L{key['max_length']}-{digest}.safetensors"


def read_cached(path: Path, key: dict[str, Any], n_rows: int, text_hash: str) -> np.ndarray | None:
    """The cached matrix if the file is whole and of exactly this key and these rows; None otherwise."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
        if meta.get("key") != json.dumps(key, sort_keys=True) or meta.get("text_hash") != text_hash:
            return None
        mat = load_file(str(path)).get("features")
    except (OSError, SafetensorError, ValueError, KeyError, json.JSONDecodeError):
        return None
    if mat is None or mat.ndim != 2 or mat.shape[0] != n_rows or mat.dtype != np.float32 \
            or not np.isfinite(mat).all():
        return None
    return mat


def write_cached(path: Path, key: dict[str, Any], text_hash: str, mat: np.ndarray) -> None:
    """Write via a temporary file and rename, so a crash leaves no half file under the real name."""
    import os

    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temp_name(path.name))
    try:
        save_file({"features": np.ascontiguousarray(mat, dtype=np.float32)}, str(tmp),
                  metadata={"key": json.dumps(key, sort_keys=True), "text_hash": text_hash})
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def pool(hidden: "torch.Tensor", mask: "torch.Tensor", pooling: str) -> "torch.Tensor":
    """Mean of the last hidden states over real tokens, or the first token's state."""
    if pooling == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def load_encoder(model_path: str) -> tuple[Any, Any]:
    """AutoTokenizer + AutoModel (the body without any head) in float32, eval mode."""
    from transformers import AutoModel, AutoTokenizer

    from basefuse.finetuning.api import _quiet_loading

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BasefuseError(f"cannot load a tokenizer from {model_path}: {str(e).splitlines()[0] if str(e) else ''}"
                            "; give a model folder with tokenizer files, a built-in model or a hub id") from e
    try:
        with _quiet_loading(False):
            net = AutoModel.from_pretrained(model_path)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise BasefuseError(f"cannot load a model from {model_path}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if getattr(net.config, "is_encoder_decoder", False):
        net = net.get_encoder()
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise BasefuseError(f"tokenizer of {model_path} has neither a pad nor an eos token; add a pad token")
        tokenizer.pad_token = tokenizer.eos_token
    return net.float().eval(), tokenizer


def forward_batches(net: Any, enc: Any, *, batch_size: int, pooling: str, device: "torch.device") -> np.ndarray:
    """Pooled features of every row of an encoded split; batches of similar length (less padding), rows returned
    in their original order."""
    import torch

    from basefuse.finetuning.loop import make_batch

    n = len(enc.lengths)
    order = np.argsort(enc.lengths, kind="stable")
    out: np.ndarray | None = None
    with torch.no_grad():
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            batch = make_batch(enc, idx, device)
            hidden = net(**batch).last_hidden_state
            pooled = pool(hidden.float(), batch["attention_mask"], pooling).cpu().numpy()
            if out is None:
                out = np.empty((n, pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def split_features(model_path: str, base_fp: str, task_fp: str, splits: dict[str, "Dataset"], *, max_length: int,
                   pooling: str, batch_size: int, device: "torch.device") -> tuple[dict[str, np.ndarray], dict[str, bool]]:
    """Features of each named split (all its rows), from the cache or computed and cached; and which were hits.

    The model is loaded only if some split is not cached. A base known only by hub id (no weights' hash) is never
    cached: its id does not pin its weights.
    """
    from basefuse.finetuning.loop import encode

    feats: dict[str, np.ndarray] = {}
    hits: dict[str, bool] = {}
    todo: list[tuple[str, dict[str, Any], str]] = []
    cacheable = base_fp.startswith("sha256:")
    for name, ds in splits.items():
        key = cache_key(base_fp=base_fp, task_fp=task_fp, split=name, max_length=max_length, pooling=pooling)
        th = split_text_hash(ds)
        cached = read_cached(cache_path(key), key, len(ds), th) if cacheable else None
        hits[name] = cached is not None
        if cached is not None:
            feats[name] = cached
        else:
            todo.append((name, key, th))
    if todo:
        net, tokenizer = load_encoder(model_path)
        net.to(device)
        for name, key, th in todo:
            enc = encode(tokenizer, splits[name], max_length)
            mat = forward_batches(net, enc, batch_size=batch_size, pooling=pooling, device=device)
            if not np.isfinite(mat).all():
                raise BasefuseError(f"{model_path}: the base gives non-finite features on the {name} split; "
                                    "check its weights (basefuse inspect)")
            if cacheable:
                write_cached(cache_path(key), key, th, mat)
            feats[name] = mat
        del net
    return feats, hits
