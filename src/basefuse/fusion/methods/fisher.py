"""`fisher`: the Fisher-weighted mean Σ w_i F_i θ_i / Σ w_i F_i per element (Matena & Raffel 2022, "Merging models
with Fisher-weighted averaging"), F_i the diagonal Fisher of source i on its own task data.

The Fisher is estimated by `fusion.data_stats.fisher_diagonal` as the mean over examples of the squared gradient of
log p(ŷ | x) with ŷ the model's *own predicted* label (argmax), not the true label: the labels of the data are
not read. This choice is ours (the brief's); /work/shared/PAPER.md does not say which estimator the paper used.
Floor: `epsilon` is added to every F_i, so an element no source informs (all F_i = 0) gets exactly the weighted mean
Σ w_i θ_i, and elements with equal Fisher in every source get the weighted mean too.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from basefuse.errors import BasefuseError
from basefuse.fusion.methods.contract import Context, Method, Param, Rows


def fisher_mean(x: Rows, fisher: Sequence[Any], w: np.ndarray, epsilon: float) -> Any:
    """Σ w_i (F_i + ε) θ_i / Σ w_i (F_i + ε), element by element."""
    num = (fisher[0] + epsilon) * float(w[0])
    den = num * 1.0
    num = num * x[0]
    for i in range(1, len(x)):
        fi = (fisher[i] + epsilon) * float(w[i])
        num += fi * x[i]
        den += fi
    return num / den


def _fuse(ctx: Context, params: Mapping[str, Any]) -> Any:
    f = ctx.side.get("fisher")
    if f is None:
        raise BasefuseError(f"method 'fisher': no Fisher for tensor {ctx.name!r}; give --data SRC=TASK for every "
                            "source")
    return fisher_mean(ctx.x, f, ctx.w, params["epsilon"])


METHOD = Method(
    name="fisher", fuse=_fuse,
    summary="Fisher-weighted mean Σ w_i F_i θ_i / Σ w_i F_i per element, F_i each source's diagonal Fisher on its "
            "own task (--data)",
    paper="Matena & Raffel 2022, Merging models with Fisher-weighted averaging (arXiv:2111.09832)",
    params=(Param("epsilon", float, 1e-8, "floor added to every Fisher: elements no source informs get the weighted "
                  "mean", low=0.0, low_open=True),
            Param("n", int, 256, "examples of each source's task the Fisher is estimated on", low=1)),
    weights="optional", side_inputs=("fisher",),
)
