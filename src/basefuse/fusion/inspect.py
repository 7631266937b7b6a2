"""Task-vector statistics of a set of sources, and flagging of sources that are not finetunes of the base."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from basefuse.checkpoints.align import align
from basefuse.checkpoints.safetensors_io import to_compute
from basefuse.checkpoints.source import load_checkpoint

# A finetune moves a pretrained body by a few percent of its norm; a different pretraining
# (or a random init) is as far away as the body is large.
MAX_RELATIVE_DISTANCE = 0.5
OUTLIER_FACTOR = 10.0
CHUNK = 1 << 21


def flag_unrelated(names: Sequence[str], dist: Sequence[float], ref_norm: float,
                   outliers: bool = True) -> list[dict[str, Any]]:
    """Sources whose distance to the reference is implausible for a finetune.

    Rules: relative distance > MAX_RELATIVE_DISTANCE, or (N >= 3, `outliers`) more than OUTLIER_FACTOR times
    the median distance of the other sources. The outlier rule guesses at sources of unknown origin; for
    finetunes known to start from the base (an experiment's own) it only measures how long each trained.
    """
    flags = []
    for i, (name, d) in enumerate(zip(names, dist)):
        rel = d / ref_norm if ref_norm > 0 else math.inf
        others = [x for j, x in enumerate(dist) if j != i]
        med = float(np.median(others)) if others else 0.0
        if rel > MAX_RELATIVE_DISTANCE:
            flags.append({"source": name, "reason": f"relative distance {rel:.3g} to the reference is above "
                                                    f"{MAX_RELATIVE_DISTANCE} (not a finetune of it?)"})
        elif outliers and len(dist) >= 3 and med > 0 and d > OUTLIER_FACTOR * med:
            flags.append({"source": name, "reason": f"distance {d:.3g} is over {OUTLIER_FACTOR:g}x the median "
                                                    f"{med:.3g} of the other sources"})
    return flags


def inspect_sources(sources: Sequence[str | Path], base: str | Path | None = None,
                    outliers: bool = True) -> dict[str, Any]:
    """Per-source task-vector norm, pairwise cosine, sign-conflict rate, head share, and flags.

    Task vectors are relative to `base`, or to the sources' mean when no base is given. A model (source or
    base) with a NaN or Inf in a body tensor is listed under `non_finite` and flagged: its statistics are NaN.
    `outliers`: apply the far-from-the-median rule of `flag_unrelated` too.
    """
    cks = [load_checkpoint(s) for s in sources]
    bck = load_checkpoint(base) if base is not None else None
    try:
        al = align(cks, bck)
        n = len(cks)
        gram = np.zeros((n, n), dtype=np.float64)
        ref_sq = 0.0
        conflicts = 0
        counted = 0
        fused = [k for k in al.body if k not in al.copied]
        non_finite: dict[str, str] = {}  # model name -> first body tensor holding NaN or Inf
        for canon in fused:
            numel = math.prod(al.shapes[canon])
            for a in range(0, numel, CHUNK):
                b = min(numel, a + CHUNK)
                x = np.empty((n, b - a), dtype=np.float64)
                for i, ck in enumerate(cks):
                    key = al.source_keys[i][canon]
                    x[i] = to_compute(ck.view(key, a, b), ck.tensors[key].dtype, np.float64)
                if bck is not None:
                    bk = al.base_keys[canon]
                    ref = to_compute(bck.view(bk, a, b), bck.tensors[bk].dtype, np.float64)
                else:
                    ref = x.mean(axis=0)
                for i in np.flatnonzero(~np.isfinite(x).all(axis=1)):
                    non_finite.setdefault(cks[i].name, al.source_keys[i][canon])
                if bck is not None and not np.isfinite(ref).all():
                    non_finite.setdefault(bck.name, al.base_keys[canon])
                tv = x - ref
                gram += tv @ tv.T
                ref_sq += float(ref @ ref)
                s = np.sign(tv)
                nonzero = (s != 0).sum(axis=0)
                pos = (s > 0).sum(axis=0)
                multi = nonzero >= 2
                counted += int(multi.sum())
                conflicts += int((multi & (pos > 0) & (pos < nonzero)).sum())
        norms = np.sqrt(np.diag(gram))
        ref_norm = math.sqrt(ref_sq)
        cos = gram / np.maximum(np.outer(norms, norms), 1e-30)
        names = [c.name for c in cks]
        per_source = []
        for i, ck in enumerate(cks):
            total = sum(math.prod(t.shape) for t in ck.tensors.values())
            body = sum(math.prod(al.shapes[k]) for k in al.body)
            per_source.append({"source": ck.name, "model_type": ck.model_type,
                               "task_vector_norm": float(norms[i]),
                               "relative_norm": float(norms[i] / ref_norm) if ref_norm else None,
                               "head_share": 1.0 - body / total if total else 0.0})
        return {"reference": "base" if bck is not None else "mean of sources",
                "base": bck.name if bck is not None else None,
                "sources": per_source,
                "cosine": [[float(v) for v in row] for row in cos],
                "sign_conflict_rate": conflicts / counted if counted else 0.0,
                "body_parameters": int(sum(math.prod(al.shapes[k]) for k in fused)),
                "non_finite": [{"model": m, "tensor": k} for m, k in non_finite.items()],
                "flagged": [{"source": m, "reason": f"tensor {k!r} holds NaN or Inf values (a diverged or corrupt "
                                                    "checkpoint)"} for m, k in non_finite.items()]
                + flag_unrelated(names, list(norms), ref_norm, outliers=outliers)}
    finally:
        for c in [*cks, *([bck] if bck is not None else [])]:
            c.close()
