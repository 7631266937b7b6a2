"""`breadcrumbs`: drop each task vector's largest outliers and its smallest entries, then task arithmetic
(Davari & Belilovsky 2024, "Model Breadcrumbs"); mergekit's `breadcrumbs` (its `magnitude_outliers` mask)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from basefuse.fusion.arrays import ops_for
from basefuse.fusion.methods.contract import Context, Method, Param, Rows


def breadcrumbs(x: Rows, base: np.ndarray, density: float = 0.9, gamma: float = 0.01,
                lam: float = 1.0) -> np.ndarray:
    """Per task vector (m entries) ranked by |δ|: drop the int(gamma·m) largest and the smallest so that
    int(density·m) stay (fewer outliers dropped when both do not fit); θ_0 + λ Σ_i δ̃_i. Entries tied at a cut are
    all kept at the lower cut and all dropped at the upper one."""
    xp = ops_for(base)
    tv = xp.stack(x)
    tv -= base
    m = tv.shape[1]
    if density < 1:
        n_top = int(gamma * m)
        n_bot = m - int(density * m) - n_top
        if n_bot < 0:
            n_top, n_bot = n_top + n_bot, 0
        mag = abs(tv)
        if n_top > 0:
            tv[mag >= xp.kth_smallest(mag, m - n_top)] = 0
        if n_bot >= m:      # int(density·m) is 0: nothing kept
            tv[...] = 0
        elif n_bot > 0:
            tv[mag < xp.kth_smallest(mag, n_bot)] = 0
    out = tv.sum(0)
    out *= lam
    return out + base


def _fuse(ctx: Context, params: Mapping[str, Any]) -> np.ndarray:
    return breadcrumbs(ctx.x, ctx.base, density=params["density"], gamma=params["gamma"], lam=params["lambda"])


METHOD = Method(
    name="breadcrumbs", fuse=_fuse,
    summary="drop each task vector's gamma share of largest and its smallest entries (density kept), "
            "θ_0 + λ Σ δ̃_i",
    paper="Davari & Belilovsky 2024, Model Breadcrumbs: Scaling multi-task model merging with sparse masks "
          "(arXiv:2312.06795)",
    params=(Param("density", float, 0.9, "share of each task vector's entries kept", low=0.0, high=1.0,
                  low_open=True, mergekit="density"),
            Param("gamma", float, 0.01, "share of each task vector's largest entries dropped", low=0.0, high=1.0,
                  high_open=True, mergekit="gamma"),
            Param("lambda", float, 1.0, "scale of the summed task vectors", mergekit="lambda")),
    needs_base=True, elementwise=False, mergekit="breadcrumbs",
)
