"""`regmean`: per linear layer, the weights that best reproduce every source's outputs on its own inputs (Jin et al.
2023, "Dataless knowledge fusion by merging weights of language models"):
Wᵀ = (Σ_i G̃_i)⁻¹ Σ_i G̃_i W_iᵀ, G_i = X_iᵀ X_i the Gram matrix of the layer's inputs on source i's data and G̃_i
its off-diagonal scaled by `alpha`. torch stores a linear weight as (out, in), so W_iᵀ is (in, out) and G_i is
(in, in). Other tensors (biases, LayerNorm, embeddings) are averaged. The default alpha 0.9 is ours:
/work/shared/PAPER.md does not give the paper's value.
An input dimension no source's data ever activates (a zero row and column of Σ G̃_i) keeps the plain mean of the
sources' weights for that column, instead of a singular solve.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from basefuse.fusion.methods.average import average
from basefuse.fusion.methods.contract import Context, Method, Param


def regmean_linear(weights: Sequence[np.ndarray], grams: Sequence[np.ndarray], alpha: float) -> np.ndarray:
    """The RegMean weight (out, in) from the sources' (out, in) weights and (in, in) Grams, solved in float64."""
    n_in = grams[0].shape[0]
    lhs = np.zeros((n_in, n_in))
    rhs = np.zeros((n_in, weights[0].shape[0]))
    for wi, gi in zip(weights, grams):
        g = np.asarray(gi, dtype=np.float64)
        g = alpha * g + (1.0 - alpha) * np.diag(np.diag(g))
        lhs += g
        rhs += g @ np.asarray(wi, dtype=np.float64).T
    dead = np.diag(lhs) == 0
    if dead.any():
        lhs[dead, dead] = 1.0
        rhs[dead] = np.mean([np.asarray(wi, dtype=np.float64).T[dead] for wi in weights], axis=0)
    return np.linalg.solve(lhs, rhs).T


def _fuse(ctx: Context, params: Mapping[str, Any]) -> Any:
    grams = ctx.side.get("gram")
    if grams is None or len(ctx.shape) != 2:
        return average(ctx.x)
    on_torch = not isinstance(ctx.x[0], np.ndarray)
    x = [r.cpu().numpy() if on_torch else r for r in ctx.x]
    g = [r.cpu().numpy() if on_torch else r for r in grams]
    n_out, n_in = ctx.shape
    out = regmean_linear([r.reshape(n_out, n_in) for r in x], [r.reshape(n_in, n_in) for r in g], params["alpha"])
    out = out.reshape(-1).astype(x[0].dtype)
    if on_torch:
        import torch

        return torch.as_tensor(out, device=ctx.x[0].device)
    return out


METHOD = Method(
    name="regmean", fuse=_fuse,
    summary="per linear layer Wᵀ = (Σ G̃_i)⁻¹ Σ G̃_i W_iᵀ, G_i the layer's input Gram matrix on source i's task "
            "(--data), off-diagonal scaled by alpha; other tensors averaged",
    paper="Jin et al. 2023, Dataless knowledge fusion by merging weights of language models (arXiv:2212.09849)",
    params=(Param("alpha", float, 0.9, "scale of the Gram matrices' off-diagonal (1: exact least squares; 0: a "
                  "diagonal-weighted mean)", low=0.0, high=1.0),
            Param("n", int, 256, "examples of each source's task the Gram matrices are computed on", low=1)),
    side_inputs=("gram",), elementwise=False,
)
