"""Fusion methods: pure functions on stacked flat arrays, and the one registry.

Each function takes `x`, the N sources' rows of m values (an (N, m) array or a sequence of N
(m,) arrays, already in the accumulation dtype, possibly read-only views of the files: never
modified in place), `base` of shape (m,) or None, `w` of shape (N,) (normalised weights, sum 1)
and its own keyword parameters, and returns a new fused (m,) array. They use arithmetic operators
and `ops_for(...)`, so the same function runs on numpy arrays (the CPU path, free of torch's
start-up cost) and on torch tensors (`--device cuda`).

To add a method: write one function and add one `Method(...)` line to METHODS.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from basefuse.errors import BasefuseError
from basefuse.fusion.arrays import ops_for


Rows = np.ndarray | Sequence[np.ndarray]


def average(x: Rows, base: np.ndarray | None, w: np.ndarray) -> np.ndarray:
    """Uniform mean of the bodies (Choshen et al. 2022, "Fusing finetuned models for better pretraining")."""
    n = len(x)
    out = x[0] + x[1] if n > 1 else x[0] * 1.0
    for i in range(2, n):  # row-wise adds stream through memory faster than a reduction over axis 0
        out += x[i]
    out *= 1.0 / n
    return out


def weighted(x: Rows, base: np.ndarray | None, w: np.ndarray) -> np.ndarray:
    """Weighted mean, Σ w_i θ_i with Σ w_i = 1 (Matena & Raffel 2022 use Fisher weights; here given)."""
    out = x[0] * float(w[0])
    for i in range(1, len(x)):
        out += x[i] * float(w[i])
    return out


def task_arithmetic(x: Rows, base: np.ndarray, w: np.ndarray, lam: float = 0.3) -> np.ndarray:
    """θ_0 + λ Σ_i (θ_i − θ_0) (Ilharco et al. 2023, "Editing models with task arithmetic")."""
    out = x[0] - base
    for i in range(1, len(x)):  # add each task vector, keeping the running sum small
        out += x[i]
        out -= base
    out *= lam
    out += base
    return out


def ties(x: Rows, base: np.ndarray, w: np.ndarray, density: float = 0.2, lam: float = 1.0) -> np.ndarray:
    """Trim each task vector to its top `density` share by magnitude, elect the sign of the summed
    mass, average only the entries agreeing with it (Yadav et al. 2023, "TIES-Merging")."""
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


def dare(x: Rows, base: np.ndarray, w: np.ndarray, p: float = 0.9, lam: float = 1.0,
         seed: int = 0, key: str = "") -> np.ndarray:
    """Drop each task-vector entry with probability p, rescale the rest by 1/(1−p), then
    θ_0 + λ Σ w_i δ̂_i (Yu et al. 2024, "Language models are Super Mario"). The mask depends only
    on (seed, tensor name), so results are reproducible."""
    rng = np.random.default_rng([int(seed), zlib.crc32(key.encode())])
    xp = ops_for(base)
    tv = xp.stack(x)
    tv -= base
    # the mask is drawn on the CPU whatever the device, so cpu and cuda drop the same entries
    tv *= xp.like(rng.random(tuple(tv.shape), dtype=np.float32) >= p, tv)
    tv *= 1.0 / (1.0 - p)
    out = tv[0] * float(w[0])
    for i in range(1, tv.shape[0]):
        out += tv[i] * float(w[i])
    out *= lam
    return out + base


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., np.ndarray]
    needs_base: bool = False
    uses_weights: bool = False
    elementwise: bool = True   # result at an element depends only on that element: may be chunked
    keyed: bool = False        # gets the tensor name (for seeding)
    params: tuple[str, ...] = ()


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("average", average),
    Method("weighted", weighted, uses_weights=True),
    Method("task-arithmetic", task_arithmetic, needs_base=True, params=("lam",)),
    Method("ties", ties, needs_base=True, elementwise=False, params=("density", "lam")),
    Method("dare", dare, needs_base=True, uses_weights=True, elementwise=False, keyed=True,
           params=("p", "lam", "seed")),
]}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise BasefuseError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def check_params(method: Method, params: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise method parameters (`k` is TIES' top-k percent alias for density)."""
    params = dict(params)
    if method.name == "ties" and "k" in params:
        params["density"] = float(params.pop("k")) / 100.0
    unknown = sorted(set(params) - set(method.params))
    if unknown:
        raise BasefuseError(f"method {method.name!r} has no parameter {unknown[0]!r}; it takes "
                            f"{', '.join(method.params) or 'no parameters'}")
    if "density" in params and not 0 < float(params["density"]) <= 1:
        raise BasefuseError(f"ties density must be in (0, 1] (or k in (0, 100]), got {params['density']}")
    if "p" in params and not 0 <= float(params["p"]) < 1:
        raise BasefuseError(f"dare p (drop probability) must be in [0, 1), got {params['p']}")
    if int(params.get("seed", 0)) < 0:
        raise BasefuseError(f"dare seed must be >= 0, got {params['seed']}")
    for k in ("lam", "density", "p"):
        if k in params:
            params[k] = float(params[k])
    if "seed" in params:
        params["seed"] = int(params["seed"])
    return params


def normalise_weights(method: Method, weights: list[float] | None, n: int) -> np.ndarray:
    """Weights must be non-negative with a positive sum; they are scaled to sum to 1."""
    if weights is None:
        if method.name == "weighted":
            raise BasefuseError("method 'weighted' needs --weights, one per source")
        return np.full(n, 1.0 / n)
    if not method.uses_weights:
        raise BasefuseError(f"method {method.name!r} takes no weights; use 'weighted' or 'dare'")
    if len(weights) != n:
        raise BasefuseError(f"got {len(weights)} weights for {n} sources: give one weight per source")
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise BasefuseError(f"weights {list(weights)} must be finite and non-negative")
    if w.sum() <= 0:
        raise BasefuseError(f"weights {list(weights)} sum to 0: give at least one positive weight")
    return w / w.sum()
