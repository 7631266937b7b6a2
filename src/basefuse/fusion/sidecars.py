"""The data-aware methods' per-source statistics as safetensors sidecars: computed once, reused on the next fuse.

A sidecar lies beside the checkpoint (`basefuse-<kind>-<key>.safetensors` in its folder) or, when that folder is not
writable or is a snapshot of the hub cache, in `$BASEFUSE_CACHE/fusion-stats/`. Its name hashes everything the numbers depend on: the kind and
estimator version, the checkpoint's weights fingerprint, the task's data fingerprint, the number of examples and the
token length. It is written to a temporary name and renamed, so a half-written sidecar is never read.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from basefuse.checkpoints.safetensors_io import read_header
from basefuse.checkpoints.source import Checkpoint
from basefuse.errors import BasefuseError
from basefuse.io import cache_dir, temp_name

ESTIMATOR_VERSION = 1
MAX_LENGTH = 128       # tokens per example
BATCH_SIZE = 16        # examples per forward pass for the Gram matrices
KINDS = ("fisher", "gram")


@dataclass(frozen=True)
class StatsRequest:
    """Which statistic of which source on which data: `n` examples of `task`'s training split. `task`: a spec, or
    a dict of `load_task`'s arguments (`spec`, `text_col`, `label_col`, `pair_col`)."""

    kind: str
    source: Checkpoint
    task: str | dict[str, Any]
    n: int
    tokenizer_from: Path | None = None   # a folder with the tokenizer when the source has none (usually --base)


def sidecar_key(kind: str, weights_fp: str, data_fp: str, n: int) -> str:
    text = json.dumps({"kind": kind, "version": ESTIMATOR_VERSION, "weights": weights_fp, "data": data_fp, "n": n,
                       "max_length": MAX_LENGTH}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _places(folder: Path, kind: str, key: str) -> list[Path]:
    """Beside the checkpoint, else in the cache; never inside a hub-cache snapshot (huggingface_hub's own files)."""
    from basefuse.checkpoints.ref import snapshot_origin

    name = f"basefuse-{kind}-{key}.safetensors"
    cached = cache_dir() / "fusion-stats" / name
    return [cached] if snapshot_origin(folder) != (None, None) else [folder / name, cached]


def open_sidecar(path: Path, name: str) -> Checkpoint:
    """A sidecar opened like a checkpoint (headers only), so the engine slices it like the sources."""
    tensors, _ = read_header(path)
    return Checkpoint(name=name, path=path.parent, config={}, tensors=dict(tensors), files=[path])


def statistics(req: StatsRequest) -> Path:
    """The sidecar for `req`: found beside the checkpoint or in the cache, else computed and written."""
    from basefuse.checkpoints.ref import weights_fingerprint
    from basefuse.data.api import load_task

    args = dict(req.task) if isinstance(req.task, dict) else {"spec": req.task}
    args = {k: v for k, v in args.items() if v is not None}
    task = load_task(**args)
    data_fp = task.fingerprint or json.dumps(args, sort_keys=True)
    key = sidecar_key(req.kind, weights_fingerprint(req.source.path), data_fp, req.n)
    places = _places(req.source.path, req.kind, key)
    for p in places:
        if p.is_file():
            return p
    tensors, meta = _compute(req, task)
    meta |= {"kind": req.kind, "key": key, "task": json.dumps(args, sort_keys=True), "data_fingerprint": data_fp,
             "n": str(req.n), "estimator_version": str(ESTIMATOR_VERSION)}
    for p in places:
        if _write(p, tensors, meta):
            return p
    raise BasefuseError(f"cannot write the {req.kind} sidecar of {req.source.name} beside it or in {places[1].parent}: "
                        "make one of them writable (or set BASEFUSE_CACHE)")


def _write(path: Path, tensors: dict[str, Any], meta: dict[str, str]) -> bool:
    from safetensors.torch import save_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(temp_name(path.name))
        try:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return True
    except OSError:
        return False


def _compute(req: StatsRequest, task: Any) -> tuple[dict[str, Any], dict[str, str]]:
    from basefuse.fusion import data_stats

    model, tokenizer = _load(req)
    ds = task.train.select(range(min(req.n, len(task.train))))
    if len(ds) == 0:
        raise BasefuseError(f"task {task.name}: no training examples to estimate the {req.kind} of {req.source.name}")
    from basefuse.finetuning.loop import encode

    enc = encode(tokenizer, ds, MAX_LENGTH)
    stored = [k for k, v in req.source.tensors.items() if v.dtype in ("F32", "F16", "BF16", "F64")]
    prefix = data_stats.body_prefix(model, stored)
    if req.kind == "fisher":
        params = {p for p, _ in model.named_parameters()}
        keys = {k: k for k in stored if k.startswith(prefix) and k in params}
        fisher, count = data_stats.fisher_diagonal(model, _batches(enc, 1), keys)
        import torch

        for k in stored:  # body tensors the model does not hold as parameters (buffers): no information
            if k.startswith(prefix) and k not in fisher:
                fisher[k] = torch.zeros(req.source.tensors[k].shape, dtype=torch.float32)
        return fisher, {"examples": str(count)}
    layers = data_stats.linear_layers(model, prefix, stored)
    if not layers:
        raise BasefuseError(f"{req.source.name}: its body ({req.source.model_type}) has no nn.Linear layers whose "
                            "weights the checkpoint stores, so RegMean has no Gram matrices to compute (GPT-2's "
                            "Conv1D is not supported); use another method")
    grams, tokens = data_stats.gram_matrices(model, _batches(enc, BATCH_SIZE), layers)
    return grams, {"examples": str(len(ds)), "tokens": str(tokens)}


def _batches(enc: Any, size: int) -> Iterator[dict[str, Any]]:
    import torch

    from basefuse.finetuning.loop import make_batch

    for a in range(0, len(enc), size):
        yield make_batch(enc, np.arange(a, min(len(enc), a + size)), torch.device("cpu"))


def _load(req: StatsRequest) -> tuple[Any, Any]:
    """The source with its own head, and a tokenizer (its own, else `tokenizer_from`'s)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    archs = req.source.config.get("architectures") or []
    if not any("ForSequenceClassification" in a for a in archs):
        raise BasefuseError(f"{req.source.name}: not a sequence classifier (architectures {archs}); the {req.kind} "
                            "is estimated with the source's own classification head, which it lacks")
    from basefuse.finetuning.api import _quiet_loading

    try:
        with _quiet_loading(progress=False):
            model = AutoModelForSequenceClassification.from_pretrained(req.source.path).float()
    except (OSError, ValueError) as e:
        raise BasefuseError(f"{req.source.name}: cannot load it as a sequence classifier "
                            f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    for folder in [req.source.path, req.tokenizer_from]:
        if folder is None:
            continue
        try:
            return model, AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError, TypeError):
            continue
    raise BasefuseError(f"{req.source.name}: no tokenizer in its folder or in --base; save the tokenizer with the "
                        "model (tokenizer.save_pretrained) or give --base")
