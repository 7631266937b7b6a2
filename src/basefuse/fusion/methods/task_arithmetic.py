"""`task_arithmetic`: θ_0 + λ Σ_i (θ_i − θ_0) (Ilharco et al. 2023, "Editing models with task arithmetic")."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from basefuse.fusion.methods.contract import Alias, Context, Method, Param, Rows

LAMBDA = Param("lambda", float, 0.3, "scale of the summed task vectors", mergekit="lambda")


def task_arithmetic(x: Rows, base: np.ndarray, w: np.ndarray | None = None, lam: float = 0.3) -> np.ndarray:
    """θ_0 + λ Σ_i δ_i, each task vector weighing 1."""
    out = x[0] - base
    for i in range(1, len(x)):  # add each task vector, keeping the running sum small
        out += x[i]
        out -= base
    out *= lam
    out += base
    return out


def _fuse(ctx: Context, params: Mapping[str, Any]) -> np.ndarray:
    return task_arithmetic(ctx.x, ctx.base, ctx.w, lam=params["lambda"])


METHOD = Method(
    name="task_arithmetic", fuse=_fuse, summary="θ_0 + λ Σ_i (θ_i − θ_0)",
    paper="Ilharco et al. 2023, Editing models with task arithmetic (arXiv:2212.04089)",
    params=(LAMBDA,), needs_base=True, mergekit="task_arithmetic", aliases=("task-arithmetic",),
    param_aliases=(Alias("lam", "lambda"),),
)
