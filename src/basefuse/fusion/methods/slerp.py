"""`slerp`: spherical interpolation between two sources' weight tensors (Shoemake 1985); mergekit's `slerp`, whose
first model is its `base_model` (t = 0) and here is the first source."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from basefuse.fusion.arrays import ops_for
from basefuse.fusion.methods.contract import Context, Method, Param, Rows

DOT_THRESHOLD = 0.9995  # mergekit's: closer to colinear than this, interpolate linearly
EPS = 1e-8              # a tensor of norm at most this is not normalised


def slerp(x: Rows, t: float = 0.5) -> np.ndarray:
    """Angle θ between the two flattened tensors; sin((1−t)θ)/sin θ · v0 + sin(tθ)/sin θ · v1, or the linear
    (1−t)·v0 + t·v1 when |cos θ| > 0.9995."""
    xp = ops_for(x[0])
    v0, v1 = x[0].reshape(1, -1), x[1].reshape(1, -1)
    n0, n1 = math.sqrt(float(xp.rowdot(v0, v0)[0])), math.sqrt(float(xp.rowdot(v1, v1)[0]))
    dot = float(xp.rowdot(v0, v1)[0]) / ((n0 if n0 > EPS else 1.0) * (n1 if n1 > EPS else 1.0))
    if abs(dot) > DOT_THRESHOLD:
        s0, s1 = 1.0 - t, t
    else:
        theta = math.acos(dot)
        s0, s1 = math.sin(theta - theta * t) / math.sin(theta), math.sin(theta * t) / math.sin(theta)
    out = x[0] * s0
    out += x[1] * s1
    return out


def _fuse(ctx: Context, params: Mapping[str, Any]) -> np.ndarray:
    return slerp(ctx.x, params["t"])


METHOD = Method(
    name="slerp", fuse=_fuse, summary="spherical interpolation from the first source (t = 0) to the second (t = 1)",
    paper="Shoemake 1985, Animating rotation with quaternion curves (spherical linear interpolation)",
    params=(Param("t", float, 0.5, "position between the first source (0) and the second (1)", low=0.0, high=1.0,
                  mergekit="t"),),
    elementwise=False, min_sources=2, max_sources=2, mergekit="slerp",
)
