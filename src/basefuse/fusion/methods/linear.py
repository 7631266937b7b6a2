"""`linear`: the weighted mean Σ w_i θ_i with Σ w_i = 1 (mergekit's `linear` with `normalize: true`)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from basefuse.fusion.methods.contract import Context, Method, Rows


def weighted(x: Rows, base: np.ndarray | None, w: np.ndarray) -> np.ndarray:
    """Σ w_i θ_i; `w` is already normalised to sum 1."""
    out = x[0] * float(w[0])
    for i in range(1, len(x)):
        out += x[i] * float(w[i])
    return out


def _fuse(ctx: Context, params: Mapping[str, Any]) -> np.ndarray:
    return weighted(ctx.x, None, ctx.w)


METHOD = Method(
    name="linear", fuse=_fuse, summary="weighted mean Σ w_i θ_i, the weights scaled to sum 1",
    paper="weighted average (cf. Matena & Raffel 2022, Merging models with Fisher-weighted averaging)",
    weights="required", mergekit="linear", aliases=("weighted",),
)
