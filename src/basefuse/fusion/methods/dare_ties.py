"""`dare_ties`: DARE's random drop and rescale, then TIES' sign election on the weighted task vectors (mergekit's
`dare_ties`; Yu et al. 2024 with Yadav et al. 2023's consensus)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from basefuse.fusion.arrays import ops_for
from basefuse.fusion.methods.contract import Context, Method, Param, Rows
from basefuse.fusion.methods.dare import DROP_PARAMS, drop_and_rescale


def dare_ties(x: Rows, base: np.ndarray, w: np.ndarray, density: float = 0.1, lam: float = 1.0, seed: int = 0,
              key: str = "", normalize: bool = False) -> np.ndarray:
    """δ̂_i as in dare_linear, weighted by w_i; the elected sign of Σ w_i δ̂_i (+ where that is >= 0); the sum of
    the agreeing weighted entries, divided by the agreeing weights with `normalize`; θ_0 + λ·that."""
    xp = ops_for(base)
    tv = drop_and_rescale(x, base, 1.0 - density, seed, key)
    wcol = xp.column(w, tv)
    tv *= wcol
    majority = xp.sign(tv.sum(0))
    majority[majority == 0] = 1
    agree = xp.sign(tv) == majority
    out = xp.where(agree, tv, 0.0).sum(0)
    if normalize:
        div = xp.where(agree, wcol, 0.0).sum(0)
        div[div == 0] = 1
        out /= div
    out *= lam
    return out + base


def _fuse(ctx: Context, params: Mapping[str, Any]) -> np.ndarray:
    return dare_ties(ctx.x, ctx.base, ctx.w, density=params["density"], lam=params["lambda"], seed=params["seed"],
                     key=ctx.name, normalize=params["normalize"])


METHOD = Method(
    name="dare_ties", fuse=_fuse,
    summary="dare_linear's drop and rescale, then the sum of the weighted entries agreeing with the elected sign",
    paper="Yu et al. 2024, Language models are Super Mario (DARE, arXiv:2311.03099), with TIES' sign election",
    params=(*DROP_PARAMS,
            Param("normalize", bool, False, "divide by the agreeing entries' weights", mergekit="normalize")),
    needs_base=True, weights="optional", elementwise=False, mergekit="dare_ties",
)
