"""`model_stock`: interpolate from the base towards the sources' mean by a ratio read from the angle between
their task vectors (Jang et al. 2024, "Model Stock: All we need is just a few fine-tuned models"); mergekit's
`model_stock`, whose reading of the paper for N > 2 (the mean of the pairwise cosines) is followed here."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from basefuse.fusion.arrays import ops_for
from basefuse.fusion.methods.contract import Context, Method, Param, Rows

NORM_FLOOR = 1e-6  # mergekit's floor on |δ_i||δ_j|: sources equal to the base give cos 0, so t = 0 (the base)


def model_stock(x: Rows, base: np.ndarray, rows: int = 1) -> np.ndarray:
    """t·mean(θ_i) + (1 − t)·θ_0 with t = N cos / (1 + (N − 1) cos), cos the mean pairwise cosine of the task
    vectors δ_i = θ_i − θ_0 (clipped to [-1, 1]; t = 0 where the denominator is 0); over the whole tensor (`rows` 1)
    or per row (`rows` rows)."""
    xp = ops_for(base)
    n = len(x)
    b = base.reshape(rows, -1)
    deltas = [xi.reshape(rows, -1) - b for xi in x]
    norms = [np.sqrt(xp.rowdot(d, d)) for d in deltas]
    cos = np.zeros(rows)
    for i in range(n):
        for j in range(i + 1, n):
            c = xp.rowdot(deltas[i], deltas[j]) / np.maximum(norms[i] * norms[j], NORM_FLOOR)
            cos += np.clip(c, -1.0, 1.0)
    cos /= n * (n - 1) / 2
    den = 1.0 + (n - 1) * cos
    # cos = -1/(N-1) exactly (two opposite task vectors, e.g. of a 1-element tensor) would divide by 0: keep the base
    t = np.divide(n * cos, den, out=np.zeros(rows), where=den != 0)
    t_col = xp.column(t, base)
    mean = x[0].reshape(rows, -1) * 1.0
    for i in range(1, n):
        mean += x[i].reshape(rows, -1)
    mean *= 1.0 / n
    return (t_col * mean + (1.0 - t_col) * b).reshape(-1)


def _fuse(ctx: Context, params: Mapping[str, Any]) -> np.ndarray:
    rows = ctx.shape[0] if params["filter_wise"] and len(ctx.shape) >= 2 else 1
    return model_stock(ctx.x, ctx.base, rows)


METHOD = Method(
    name="model_stock", fuse=_fuse,
    summary="t·mean + (1 − t)·base, t = N cos / (1 + (N − 1) cos) from the task vectors' mean pairwise cosine",
    paper="Jang et al. 2024, Model Stock: All we need is just a few fine-tuned models (arXiv:2403.19522)",
    params=(Param("filter_wise", bool, False, "one angle per output row of a matrix instead of per tensor",
                  mergekit="filter_wise"),),
    needs_base=True, elementwise=False, mergekit="model_stock",
)
