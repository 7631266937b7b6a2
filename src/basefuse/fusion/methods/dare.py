"""`dare_linear`: drop task-vector entries at random, rescale the rest, weighted task arithmetic (Yu et al. 2024,
"Language models are Super Mario"). mergekit's `dare_linear`: `density` is the share *kept*."""
from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from basefuse.fusion.arrays import ops_for
from basefuse.fusion.methods.contract import Alias, Context, Method, Param, Rows


def drop_and_rescale(x: Rows, base: np.ndarray, p: float, seed: int, key: str) -> np.ndarray:
    """The task vectors (N, m), each entry dropped with probability p and the rest rescaled by 1/(1−p). The mask
    depends only on (seed, tensor name), so results are reproducible."""
    rng = np.random.default_rng([int(seed), zlib.crc32(key.encode())])
    xp = ops_for(base)
    tv = xp.stack(x)
    tv -= base
    # the mask is drawn on the CPU whatever the device, so cpu and cuda drop the same entries
    tv *= xp.like(rng.random(tuple(tv.shape), dtype=np.float32) >= p, tv)
    tv *= 1.0 / (1.0 - p)
    return tv


def dare(x: Rows, base: np.ndarray, w: np.ndarray, p: float = 0.9, lam: float = 1.0,
         seed: int = 0, key: str = "") -> np.ndarray:
    """Drop each task-vector entry with probability p, rescale the rest by 1/(1−p), then θ_0 + λ Σ w_i δ̂_i."""
    tv = drop_and_rescale(x, base, p, seed, key)
    out = tv[0] * float(w[0])
    for i in range(1, tv.shape[0]):
        out += tv[i] * float(w[i])
    out *= lam
    return out + base


def _fuse(ctx: Context, params: Mapping[str, Any]) -> np.ndarray:
    return dare(ctx.x, ctx.base, ctx.w, p=1.0 - params["density"], lam=params["lambda"], seed=params["seed"],
                key=ctx.name)


#: the drop-and-rescale parameters, shared with dare_ties
DROP_PARAMS = (Param("density", float, 0.1, "probability of keeping each task-vector entry", low=0.0, high=1.0,
                     low_open=True, mergekit="density"),
               Param("lambda", float, 1.0, "scale of the merged task vector", mergekit="lambda"),
               Param("seed", int, 0, "seed of the drop mask (with the tensor name)", low=0))

METHOD = Method(
    name="dare_linear", fuse=_fuse,
    summary="keep each task-vector entry with probability density, rescale by 1/density, θ_0 + λ Σ w_i δ̂_i",
    paper="Yu et al. 2024, Language models are Super Mario (DARE, arXiv:2311.03099)",
    params=DROP_PARAMS,
    needs_base=True, weights="optional", elementwise=False, mergekit="dare_linear", aliases=("dare",),
    param_aliases=(Alias("p", "density", lambda v: 1.0 - v, " (the keep probability, 1 - p)"),
                   Alias("lam", "lambda")),
)
