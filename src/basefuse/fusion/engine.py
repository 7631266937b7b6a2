"""The streaming engine: one tensor (or one chunk of it) at a time across the N sources.

Memory stays at one chunk per source plus the result, whatever N and the model size, for
element-wise methods; methods that need whole tensors (declared `elementwise=False`: ties, dare) hold N copies of the
largest tensor. Source chunks are zero-copy mapped views of the files (no read copy when the
stored dtype is the accumulation dtype); output bytes are appended to the safetensors file by
the writer's thread while the next chunk is computed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from basefuse.checkpoints.align import Alignment
from basefuse.checkpoints.safetensors_io import FLOAT_DTYPES, OutTensor, StreamingWriter, from_compute, to_compute
from basefuse.checkpoints.source import Checkpoint
from basefuse.errors import BasefuseError
from basefuse.fusion.methods.contract import Context, Method

# accumulation buffer across all sources, per step: small enough that a step's arrays stay in the CPU's caches
# (N=5 bf16 sources, 1.1B values, one process: 2 MB steps cost 5.8-6.5 s of user CPU, 32 MB steps 7.0 s)
CHUNK_BYTES = 2 * 1024 * 1024
STATS_STRIDE = 16
SAMPLE_BLOCK = 1024                 # values per contiguous sample block
MIN_CHUNK = 1 << 16                # elements per source per step, at least
DTYPE_LABELS = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}


@dataclass(frozen=True)
class Item:
    """One output tensor: fused from the sources, or copied from `origin`."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    canonical: str | None = None          # set when fused
    origin: Checkpoint | None = None      # set when copied
    origin_key: str | None = None
    fused_numel: int | None = None        # fused: only the first elements (rows); the rest copied from `origin`


@dataclass
class Stats:
    """Per-source squared distance to the reference (base, or the sources' mean), streamed."""

    sq_dist: np.ndarray
    ref_sq: float = 0.0
    fused_params: int = 0
    copied_params: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def plan(sources: list[Checkpoint], base: Checkpoint | None, al: Alignment, out_dtype: str | None) -> list[Item]:
    """Output tensors in write order: the base's own layout, or the bare body of the sources (a language model's
    own layout when its head is fused too)."""
    fused = set(al.body) - set(al.copied)

    def dtype_of(stored: str) -> str:
        return out_dtype if out_dtype and stored in FLOAT_DTYPES else stored

    items: list[Item] = []
    if base is not None:
        inverse = {v: k for k, v in (al.base_keys or {}).items()}
        keys = sorted(base.tensors, key=lambda k: (str(getattr(base.tensors[k], "file", "")),
                                                  int(getattr(base.tensors[k], "start", 0))))
        for k in keys:
            info = base.tensors[k]
            canon = inverse.get(k)
            if canon in fused and canon in al.vocab_rows:  # --tokenizer base: the rows all have, then the base's
                row = int(np.prod(info.shape[1:], dtype=np.int64))
                items.append(Item(k, dtype_of(info.dtype), info.shape, canonical=canon, origin=base, origin_key=k,
                                  fused_numel=al.vocab_rows[canon] * row))
            elif canon in fused:
                items.append(Item(k, dtype_of(info.dtype), info.shape, canonical=canon))
            else:
                items.append(Item(k, dtype_of(info.dtype), info.shape, origin=base, origin_key=k))
        return items
    first = sources[0]
    for canon in al.body:
        stored = al.source_keys[0][canon]
        info = first.tensors[stored]
        name = stored if al.lm_heads else canon  # a language model keeps its class's layout, head and all
        if canon in fused:
            items.append(Item(name, dtype_of(info.dtype), info.shape, canonical=canon))
        else:
            items.append(Item(name, dtype_of(info.dtype), info.shape, origin=first, origin_key=stored))
    return items


def _sample(v: np.ndarray) -> tuple[np.ndarray, float]:
    """Every STATS_STRIDE-th block of SAMPLE_BLOCK values (all of a short array), and the scale-up."""
    m = v.shape[0]
    if m < SAMPLE_BLOCK * STATS_STRIDE:
        return v, 1.0
    blocks = v[:m - m % SAMPLE_BLOCK].reshape(-1, SAMPLE_BLOCK)[::STATS_STRIDE]
    return blocks, m / blocks.size


def _sq(d: np.ndarray) -> float:
    # einsum, not `@`: a BLAS dot would wake OpenBLAS's spinning threads, which eat the core the
    # sha256 threads need
    d = d.reshape(-1)
    return float(np.einsum("i,i->", d, d))


def _on_device(method: Method, ctx: Context, params: dict[str, Any], device: str) -> np.ndarray:
    """The method on torch tensors on `device`; the result comes back as a numpy array."""
    import torch

    xt = [torch.tensor(row, device=device) for row in ctx.x]   # copies: the rows are read-only file views
    rt = torch.tensor(ctx.base, device=device) if ctx.base is not None else None
    side = {k: [torch.tensor(v, device=device) for v in rows] for k, rows in ctx.side.items()}
    return method.fuse(replace(ctx, x=xt, base=rt, side=side), params).cpu().numpy()


def _nonfinite_culprit(cks: list[tuple[Checkpoint, str]], start: int, stop: int, acc: Any) -> str:
    for ck, key in cks:
        info = ck.tensors[key]
        vals = to_compute(ck.view(key, start, stop), info.dtype, acc)
        if not np.all(np.isfinite(vals)):
            return f"{ck.name}: tensor {key!r} contains NaN or Inf; fix or drop that checkpoint"
    return f"fused tensor overflowed ({cks[0][1]!r}); try --accumulate float64"


def _check_cast(raw: np.ndarray, vals: np.ndarray, item: Item) -> None:
    """A finite value that the output dtype cannot hold (float16 beyond 65504) must not be written as Inf.

    Only a cast to a narrower float can overflow; the caller already checked `vals` itself.
    """
    if raw.dtype == vals.dtype or item.dtype not in ("F16", "BF16", "F32"):
        return
    finite = np.isfinite(raw) if item.dtype != "BF16" else (raw & 0x7F80) != 0x7F80  # bf16 bits: exponent all ones
    if not np.all(finite):
        raise BasefuseError(f"tensor {item.name!r}: the fused values overflow {DTYPE_LABELS[item.dtype]} "
                            f"(largest {float(np.max(np.abs(vals))):.3g}); write a wider --dtype (float32, "
                            "bfloat16) or scale the task vectors down (--param lambda=...)")


@dataclass(frozen=True)
class FusionJob:
    """Everything one fusion needs, in one object: what to read, how to fuse, where to write.

    `params`: every declared parameter of `method` (defaults filled in); `weights`: normalised, one per source;
    `side`: per-source side-input checkpoints by the name the method declares (each holding the same tensor names);
    `device`: a torch device such as "cuda:0" runs the method's arithmetic there, None keeps it in numpy.
    """

    sources: list[Checkpoint]
    base: Checkpoint | None
    alignment: Alignment
    items: list[Item]
    method: Method
    weights: np.ndarray
    params: dict[str, Any]
    out_dir: Path
    acc: Any = np.float32
    shard_size: int | None = None
    device: str | None = None
    side: dict[str, list[Checkpoint]] = field(default_factory=dict)


def run(job: FusionJob, on_progress: Callable[[int], None] | None = None) -> tuple[list[str], Stats]:
    """Compute and write every item; return the files written and the distance statistics."""
    n = len(job.sources)
    stats = Stats(sq_dist=np.zeros(n, dtype=np.float64))
    chunk = max(MIN_CHUNK, CHUNK_BYTES // (n * np.dtype(job.acc).itemsize))
    writer = StreamingWriter(job.out_dir, [OutTensor(i.name, i.dtype, i.shape) for i in job.items], job.shard_size)
    try:
        for item in job.items:
            writer.begin(item.name)
            numel = int(np.prod(item.shape, dtype=np.int64))
            if item.canonical is None:
                _copy(item, 0, numel, chunk * n, writer, job.acc)
                stats.copied_params += numel
            else:
                part = numel if item.fused_numel is None else item.fused_numel
                _fuse(job, item, part, writer, chunk if job.method.elementwise else max(part, 1), stats)
                stats.fused_params += part
                if part < numel:  # --tokenizer base: the base's own rows past those every model has
                    _copy(item, part, numel, chunk * n, writer, job.acc)
                    stats.copied_params += numel - part
            if on_progress:
                on_progress(numel)
        return writer.close(), stats
    finally:
        writer.abort()  # no-op after close; after an error, stops the writer's thread


def _copy(item: Item, start: int, stop: int, chunk: int, writer: StreamingWriter, acc: Any) -> None:
    """Elements [start, stop) of the item's origin tensor, cast to the output dtype."""
    ck, key = item.origin, item.origin_key
    stored = ck.tensors[key].dtype
    for a in range(start, stop, chunk):
        raw = ck.view(key, a, min(stop, a + chunk))
        if stored != item.dtype:
            vals = to_compute(raw, stored, acc)
            raw = from_compute(vals, item.dtype)
            _check_cast(raw, vals, item)
        writer.write(raw)


def _fuse(job: FusionJob, item: Item, numel: int, writer: StreamingWriter, chunk: int, stats: Stats) -> None:
    canon, acc, base, method = item.canonical, job.acc, job.base, job.method
    src = [(ck, job.alignment.source_keys[i][canon]) for i, ck in enumerate(job.sources)]
    base_key = job.alignment.base_keys[canon] if base is not None else None
    side_src = {name: [(ck, key) for ck, (_, key) in zip(cks, src)] for name, cks in job.side.items()}
    for a in range(0, numel, chunk):
        b = min(numel, a + chunk)
        # views of the mapped files: no copy when the stored dtype is the accumulation dtype
        x = [to_compute(ck.view(key, a, b), ck.tensors[key].dtype, acc) for ck, key in src]
        ref = None
        if base is not None and method.needs_base:
            ref = to_compute(base.view(base_key, a, b), base.tensors[base_key].dtype, acc)
        if not method.elementwise and not all(np.all(np.isfinite(row)) for row in x):
            raise BasefuseError(_nonfinite_culprit(src, a, b, acc))
        side = {name: _side_rows(pairs, a, b, method.elementwise, acc) for name, pairs in side_src.items()
                if all(key in ck.tensors for ck, key in pairs)}  # a side input may cover some tensors only
        shape = item.shape if numel == int(np.prod(item.shape, dtype=np.int64)) else \
            (numel // int(np.prod(item.shape[1:], dtype=np.int64)), *item.shape[1:])  # the rows fused
        ctx = Context(name=canon, shape=shape, x=x, base=ref, w=job.weights, start=a, stop=b, side=side)
        out = method.fuse(ctx, job.params) if job.device is None else _on_device(method, ctx, job.params, job.device)
        if not np.all(np.isfinite(out)):
            raise BasefuseError(_nonfinite_culprit(src + ([(base, base_key)] if base is not None else []), a, b, acc))
        # Distances of each source to the reference, only to flag unrelated sources: estimated
        # from a 1/STATS_STRIDE sample of contiguous blocks, which costs 1/STATS_STRIDE of a pass.
        if ref is None and base is not None:  # the base only sets the distances here: convert just their sample
            r, scale = _sample(base.view(base_key, a, b))
            r = to_compute(r, base.tensors[base_key].dtype, acc)
        else:
            r = ref if ref is not None else (out if method.mean_without_base else np.mean(x, axis=0))
            r, scale = _sample(r)
        r = r.astype(np.float64)
        for i in range(len(x)):
            stats.sq_dist[i] += _sq(_sample(x[i])[0] - r) * scale
        stats.ref_sq += _sq(r) * scale
        raw = from_compute(out, item.dtype)
        _check_cast(raw, out, item)
        writer.write(raw)
        del x, ref, side, ctx  # drops the mapped windows (nothing else refers to them)


def _side_rows(pairs: list[tuple[Checkpoint, str]], a: int, b: int, elementwise: bool, acc: Any) -> list[Any]:
    """Side inputs sliced like the sources' chunk; for a whole-tensor method, each side tensor whole (its shape may
    differ from the tensor's, e.g. an (in, in) Gram matrix beside an (out, in) weight)."""
    return [to_compute(ck.view(key, a, b) if elementwise else ck.view(key), ck.tensors[key].dtype, acc)
            for ck, key in pairs]
