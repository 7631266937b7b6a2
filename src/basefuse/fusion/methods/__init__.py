"""Fusion methods: one module each, declared through `contract.Method`, listed in `registry.METHODS`.

The maths are pure functions on the N sources' flat rows (numpy on the CPU, torch with `--device cuda`); the engine
calls each method's `fuse(Context, params)`.
"""
from typing import Any

import numpy as np

from basefuse.fusion.methods.average import average
from basefuse.fusion.methods.breadcrumbs import breadcrumbs
from basefuse.fusion.methods.contract import (Context, Method, Param, check_params, check_sources,
                                              normalise_weights, with_defaults)
from basefuse.fusion.methods.dare import dare
from basefuse.fusion.methods.dare_ties import dare_ties
from basefuse.fusion.methods.linear import weighted
from basefuse.fusion.methods.model_stock import model_stock
from basefuse.fusion.methods.registry import ALIASES, METHODS, get_method
from basefuse.fusion.methods.slerp import slerp
from basefuse.fusion.methods.task_arithmetic import task_arithmetic
from basefuse.fusion.methods.ties import ties



def fuse_arrays(method: str | Method, x: Any, base: Any = None, w: Any = None, *, tensor: str = "",
                shape: tuple[int, ...] | None = None, side: dict[str, Any] | None = None, **params: Any) -> Any:
    """One method on in-memory flat rows (N, m), as the engine would call it on one whole tensor named `tensor`.

    `w`: raw weights (normalised here; None: equal); `side`: per-source side inputs by name (N flat rows each, e.g.
    `{"fisher": F}`); `params` are checked against the declaration, defaults filled.
    """
    m = get_method(method) if isinstance(method, str) else method
    given = check_params(m, params)
    check_sources(m, len(x))
    weights = normalise_weights(m, None if w is None else [float(v) for v in w], len(x))
    ctx = Context(name=tensor, shape=shape or (int(np.prod(np.shape(x[0]))),), x=x, base=base, w=weights,
                  side=side or {})
    return m.fuse(ctx, with_defaults(m, given))


__all__ = ["fuse_arrays", "ALIASES", "METHODS", "Context", "Method", "Param", "average", "breadcrumbs", "check_params",
           "check_sources", "dare", "dare_ties", "get_method", "model_stock", "normalise_weights", "slerp", "task_arithmetic",
           "ties", "weighted", "with_defaults"]
