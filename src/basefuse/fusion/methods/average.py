"""`average`: the uniform mean of the sources (Choshen et al. 2022, "Fusing finetuned models for better
pretraining")."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from basefuse.fusion.methods.contract import Context, Method, Rows


def average(x: Rows, base: np.ndarray | None = None, w: np.ndarray | None = None) -> np.ndarray:
    """Uniform mean of the bodies; `base` and `w` are not read."""
    n = len(x)
    out = x[0] + x[1] if n > 1 else x[0] * 1.0
    for i in range(2, n):  # row-wise adds stream through memory faster than a reduction over axis 0
        out += x[i]
    out *= 1.0 / n
    return out


def _fuse(ctx: Context, params: Mapping[str, Any]) -> np.ndarray:
    return average(ctx.x)


METHOD = Method(
    name="average", fuse=_fuse, summary="uniform mean of the sources' weights",
    paper="Choshen et al. 2022, Fusing finetuned models for better pretraining (arXiv:2204.03044)",
    mean_without_base=True,
)
