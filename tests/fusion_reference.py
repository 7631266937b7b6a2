"""Independent reference formulas of the fusion methods, written from the papers' definitions.

Plain numpy in float64, vectorised over the whole (N, m) stack and not sharing a line with
`basefuse.fusion.methods`: the property test checks the streaming engine against these, and
`test_fusion_reference.py` checks these against hand-worked numbers.

Only two contracts are taken from the implementation's documentation, since they define the
output rather than compute it: task vectors are formed in the accumulation dtype (float32), and
dare's keep-mask is `default_rng([seed, crc32(tensor name)]).random((N, m), float32) >= p`.
"""
from __future__ import annotations

import math
import zlib

import numpy as np


def task_vectors(x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """θ_i − θ_0, rounded once in float32 (the accumulation dtype), then held in float64."""
    return (np.asarray(x, np.float32) - np.asarray(base, np.float32)).astype(np.float64)


def ref_average(x, base, w, **_):
    return np.asarray(x, np.float64).mean(axis=0)


def ref_weighted(x, base, w, **_):
    w = np.asarray(w, np.float64)
    return (w / w.sum()) @ np.asarray(x, np.float64)


def ref_task_arithmetic(x, base, w, lam=0.3, **_):
    return np.asarray(base, np.float64) + lam * task_vectors(x, base).sum(axis=0)


def ref_ties(x, base, w, density=0.2, lam=1.0, **_):
    """Trim (keep each row's ceil(density*m) largest |δ|, ties at the cut kept), elect the sign of the
    summed trimmed vectors, disjoint mean of the entries that agree with it."""
    d = task_vectors(x, base)
    m = d.shape[1]
    keep = math.ceil(density * m)
    cut = -np.sort(-np.abs(d), axis=1)[:, keep - 1:keep]      # each row's keep-th largest magnitude
    trimmed = np.where(np.abs(d) >= cut, d, 0.0)
    elected = np.sign(trimmed.sum(axis=0))
    agree = (np.sign(trimmed) == elected) & (trimmed != 0)
    count = agree.sum(axis=0)
    merged = np.where(count > 0, (trimmed * agree).sum(axis=0) / np.maximum(count, 1), 0.0)
    return np.asarray(base, np.float64) + lam * merged


def dare_keep_mask(shape: tuple[int, int], p: float, seed: int, key: str) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return rng.random(shape, dtype=np.float32) >= p


def ref_dare(x, base, w, p=0.9, lam=1.0, seed=0, key="", **_):
    d = task_vectors(x, base)
    kept = d * dare_keep_mask(d.shape, p, seed, key) / (1.0 - p)
    w = np.asarray(w, np.float64)
    return np.asarray(base, np.float64) + lam * ((w / w.sum()) @ kept)


REFERENCES = {"average": ref_average, "weighted": ref_weighted, "task-arithmetic": ref_task_arithmetic,
              "ties": ref_ties, "dare": ref_dare}
