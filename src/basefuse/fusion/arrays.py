"""The few array operations the fusion methods need beyond arithmetic operators, for numpy and torch.

Methods are written once: `ops_for(a)` gives numpy's versions on the CPU path (no torch import)
and torch's when the engine computes on a GPU (`--device cuda`).
"""
from __future__ import annotations

from typing import Any

import numpy as np


class NumpyOps:
    stack = staticmethod(np.stack)
    sign = staticmethod(np.sign)
    where = staticmethod(np.where)

    @staticmethod
    def kth_smallest(a: np.ndarray, k: int) -> np.ndarray:
        """Per row, the value at sorted position k (0-based), shape (rows, 1)."""
        return np.partition(a, k, axis=1)[:, k:k + 1]

    @staticmethod
    def at_least(a: np.ndarray, v: float) -> np.ndarray:
        return np.maximum(a, v)

    @staticmethod
    def like(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """A numpy array moved to `ref`'s kind and device (here: itself)."""
        return a

    @staticmethod
    def column(values: Any, ref: np.ndarray) -> np.ndarray:
        """`values` as an (n, 1) column in `ref`'s dtype (and device), to scale rows."""
        return np.asarray(values, dtype=ref.dtype).reshape(-1, 1)

    @staticmethod
    def rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per row, Σ a·b summed in float64, as a numpy array (angles are read in float64 whatever the device).

        einsum's `dtype` casts in buffered blocks: no float64 copy of the whole tensor."""
        return np.einsum("ij,ij->i", a, b, dtype=np.float64)


class TorchOps:
    @staticmethod
    def stack(rows: Any) -> Any:
        import torch

        return torch.stack(list(rows))

    @staticmethod
    def sign(a: Any) -> Any:
        return a.sign()

    @staticmethod
    def where(cond: Any, a: Any, b: float) -> Any:
        import torch

        return torch.where(cond, a, b)

    @staticmethod
    def kth_smallest(a: Any, k: int) -> Any:
        return a.kthvalue(k + 1, dim=1, keepdim=True).values

    @staticmethod
    def at_least(a: Any, v: float) -> Any:
        return a.clamp(min=v)

    @staticmethod
    def like(a: np.ndarray, ref: Any) -> Any:
        import torch

        return torch.as_tensor(a, device=ref.device)

    @staticmethod
    def column(values: Any, ref: Any) -> Any:
        import torch

        return torch.as_tensor(np.asarray(values), dtype=ref.dtype, device=ref.device).reshape(-1, 1)

    @staticmethod
    def rowdot(a: Any, b: Any) -> np.ndarray:
        return (a.double() * b.double()).sum(-1).cpu().numpy()


def ops_for(a: Any) -> type[NumpyOps] | type[TorchOps]:
    return NumpyOps if isinstance(a, np.ndarray) else TorchOps
