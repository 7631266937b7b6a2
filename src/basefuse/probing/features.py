"""Pooled features of a frozen base, cached on disk per (base weights, task data, split, max_length, pooling).

Extraction is the only costly part of a linear probe: a second probe of the same base and task (another seed,
another C grid, another train budget) reads the cache and runs no forward pass for rows already there. Only the
rows a probe uses are extracted (a large task's 30,000 train rows are never all run for a 300-example draw); the
cache file holds those rows' indices beside their features and grows as other draws need more. A cache file is
trusted only if its stored key, split size and text hash match and every value is finite; anything else is
recomputed.
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

FEATURES_FORMAT = "basefuse-features-v2"  # v2: the rows' indices stored beside their features


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


def read_cached(path: Path, key: dict[str, Any], n_rows: int,
                text_hash: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(row indices, their features) if the file is whole and of exactly this key and split; None otherwise."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
        if meta.get("key") != json.dumps(key, sort_keys=True) or meta.get("text_hash") != text_hash \
                or meta.get("n_rows") != str(n_rows):
            return None
        tensors = load_file(str(path))
        mat, rows = tensors.get("features"), tensors.get("rows")
    except (OSError, SafetensorError, ValueError, KeyError, json.JSONDecodeError):
        return None
    if mat is None or rows is None or mat.ndim != 2 or rows.ndim != 1 or mat.shape[0] != rows.shape[0] \
            or mat.dtype != np.float32 or rows.dtype != np.int64 or not np.isfinite(mat).all() \
            or (rows.size and (rows.min() < 0 or rows.max() >= n_rows or np.any(np.diff(rows) <= 0))):
        return None
    return rows, mat


def write_cached(path: Path, key: dict[str, Any], text_hash: str, mat: np.ndarray, n_rows: int | None = None,
                 rows: np.ndarray | None = None) -> None:
    """Write `rows` (default: every row of a split of `len(mat)`) and their features via a temporary file and
    rename, so a crash leaves no half file under the real name."""
    import os

    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temp_name(path.name))
    try:
        rows = np.arange(len(mat), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        n_rows = len(mat) if n_rows is None else n_rows
        save_file({"features": np.ascontiguousarray(mat, dtype=np.float32), "rows": rows}, str(tmp),
                  metadata={"key": json.dumps(key, sort_keys=True), "text_hash": text_hash, "n_rows": str(n_rows)})
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
                   pooling: str, batch_size: int, device: "torch.device",
                   rows: dict[str, np.ndarray] | None = None) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
    """Features of the rows `rows[name]` of each named split (all its rows when not given), in that order, from the
    cache or computed and added to it; and per split whether no forward pass was needed.

    The model is loaded only if some row is not cached. A base known only by hub id (no weights' hash) is never
    cached: its id does not pin its weights.
    """
    from basefuse.finetuning.loop import encode

    feats: dict[str, np.ndarray] = {}
    hits: dict[str, bool] = {}
    todo: list[tuple[str, dict[str, Any], str, np.ndarray, tuple[np.ndarray, np.ndarray] | None]] = []
    cacheable = base_fp.startswith("sha256:")
    wanted: dict[str, np.ndarray] = {}
    for name, ds in splits.items():
        want = np.arange(len(ds), dtype=np.int64) if rows is None or rows.get(name) is None \
            else np.asarray(rows[name], dtype=np.int64)
        wanted[name] = want
        key = cache_key(base_fp=base_fp, task_fp=task_fp, split=name, max_length=max_length, pooling=pooling)
        th = split_text_hash(ds)
        cached = read_cached(cache_path(key), key, len(ds), th) if cacheable else None
        have = cached[0] if cached is not None else np.zeros(0, dtype=np.int64)
        missing = np.setdiff1d(np.unique(want), have)
        hits[name] = cached is not None and missing.size == 0
        if missing.size == 0 and cached is not None:
            feats[name] = _take(cached, want)
        else:
            todo.append((name, key, th, missing, cached))
    if todo:
        net, tokenizer = load_encoder(model_path)
        net.to(device)
        for name, key, th, missing, cached in todo:
            ds = splits[name]
            enc = encode(tokenizer, ds.select(missing.tolist()), max_length)
            mat = forward_batches(net, enc, batch_size=batch_size, pooling=pooling, device=device)
            if not np.isfinite(mat).all():
                raise BasefuseError(f"{model_path}: the base gives non-finite features on the {name} split; "
                                    "check its weights (basefuse inspect)")
            merged = (missing, mat) if cached is None else _merge(cached, (missing, mat))
            if cacheable:
                write_cached(cache_path(key), key, th, merged[1], n_rows=len(ds), rows=merged[0])
            feats[name] = _take(merged, wanted[name])
        del net
    return feats, hits


def _merge(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sets of (rows, features), as one sorted by row."""
    rows = np.concatenate([a[0], b[0]])
    order = np.argsort(rows, kind="stable")
    return rows[order], np.concatenate([a[1], b[1]])[order]


def _take(cached: tuple[np.ndarray, np.ndarray], want: np.ndarray) -> np.ndarray:
    """The features of rows `want` (in that order) from sorted (rows, features)."""
    rows, mat = cached
    pos = np.searchsorted(rows, want)
    return mat[pos]
