"""`ties`: trim each task vector to its largest entries, elect a sign per entry, average the agreeing entries
(Yadav et al. 2023, "TIES-Merging")."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from basefuse.fusion.arrays import ops_for
from basefuse.fusion.methods.contract import Alias, Context, Method, Param, Rows


def ties(x: Rows, base: np.ndarray, w: np.ndarray | None = None, density: float = 0.2,
         lam: float = 1.0) -> np.ndarray:
    """Keep each task vector's top ceil(density·m) entries by magnitude (ties at the cut kept), elect the sign of
    the summed mass (0: none), average only the entries agreeing with it, θ_0 + λ·merged."""
    xp = ops_for(base)
    tv = xp.stack(x)
    tv -= base
    m = tv.shape[1]
    keep = int(math.ceil(density * m))
    if keep < m:
        mag = abs(tv)
        tv[mag < xp.kth_smallest(mag, m - keep)] = 0
    sign = xp.sign(tv.sum(0))
    agree = (xp.sign(tv) == sign) & (tv != 0)
    merged = xp.where(agree, tv, 0.0).sum(0)
    merged /= xp.at_least(agree.sum(0), 1)  # in place: stays in the accumulation dtype on numpy and torch
    return base + lam * merged


def _fuse(ctx: Context, params: Mapping[str, Any]) -> np.ndarray:
    return ties(ctx.x, ctx.base, ctx.w, density=params["density"], lam=params["lambda"])


METHOD = Method(
    name="ties", fuse=_fuse, summary="trim to the top density share by magnitude, elect signs, disjoint mean",
    paper="Yadav et al. 2023, TIES-Merging (arXiv:2306.01708)",
    params=(Param("density", float, 0.2, "share of each task vector's entries kept, by magnitude", low=0.0,
                  high=1.0, low_open=True, mergekit="density"),
            Param("lambda", float, 1.0, "scale of the merged task vector", mergekit="lambda")),
    needs_base=True, elementwise=False, mergekit="ties",
    param_aliases=(Alias("k", "density", lambda v: v / 100.0, " (a share, k/100)"), Alias("lam", "lambda")),
)
