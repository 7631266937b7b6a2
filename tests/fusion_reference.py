"""Independent reference formulas of the fusion methods, written from the papers' definitions.

Plain numpy in float64, vectorised over the whole (N, m) stack and not sharing a line with
`basefuse.fusion.methods`: the property test checks the streaming engine against these, and
`test_fusion_reference.py` checks these against hand-worked numbers.

Only two contracts are taken from the implementation's documentation, since they define the
output rather than compute it: task vectors are formed in the accumulation dtype (float32), and
dare's keep-mask is `default_rng([seed, crc32(tensor name)]).random((N, m), float32) >= p`, p = 1 - density.

model_stock, breadcrumbs and slerp follow mergekit's definitions (`merge_methods/model_stock.py`,
`sparsify.magnitude_outliers`, `merge_methods/slerp.py`), written here again from their formulas.
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


def ref_dare_ties(x, base, w, p=0.9, lam=1.0, seed=0, key="", normalize=False, **_):
    """mergekit's dare_ties with dare's mask: weighted kept task vectors w_i δ̂_i, majority sign of their sum
    (+ where >= 0), Σ of the agreeing ones (÷ Σ of the agreeing weights with normalize, 0 -> 1)."""
    d = task_vectors(x, base)
    w = np.asarray(w, np.float64)[:, None]
    weighted = w * d * dare_keep_mask(d.shape, p, seed, key) / (1.0 - p)
    majority = np.where(weighted.sum(axis=0) >= 0, 1.0, -1.0)
    agree = np.sign(weighted) == majority
    mixed = (weighted * agree).sum(axis=0)
    if normalize:
        div = (w * agree).sum(axis=0)
        mixed = mixed / np.where(div == 0, 1.0, div)
    return np.asarray(base, np.float64) + lam * mixed


def ref_model_stock(x, base, w, filter_wise=False, shape=None, **_):
    """t = N cosθ / (1 + (N-1) cosθ), cosθ the mean over pairs i<j of δ_i·δ_j / max(|δ_i||δ_j|, 1e-6) clipped to
    [-1, 1]; result t·mean(θ) + (1-t)·θ_0 (t = 0 where the denominator is 0). filter_wise: one cosθ per row
    of a matrix (shape[0] rows)."""
    x = np.asarray(x, np.float64)
    b = np.asarray(base, np.float64)
    rows = shape[0] if filter_wise and shape is not None and len(shape) >= 2 else 1
    d = (np.asarray(x, np.float32) - np.asarray(base, np.float32)).astype(np.float64).reshape(len(x), rows, -1)
    n = len(x)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    norms = np.linalg.norm(d, axis=2)                                     # (N, rows)
    cos = np.mean([np.clip(np.sum(d[i] * d[j], axis=1) / np.maximum(norms[i] * norms[j], 1e-6), -1, 1)
                   for i, j in pairs], axis=0)                            # (rows,)
    den = 1 + (n - 1) * cos
    t = np.array([n * c / dd if dd != 0 else 0.0 for c, dd in zip(cos, den)])[:, None]  # 0/0-safe: the base
    return (t * x.mean(axis=0).reshape(rows, -1) + (1 - t) * b.reshape(rows, -1)).reshape(-1)


def ref_breadcrumbs(x, base, w, density=0.9, gamma=0.01, lam=1.0, **_):
    """Per row ranked by |δ| ascending, keep ranks [n_bot, m - n_top) with n_top = int(gamma m), n_bot = m -
    int(density m) - n_top (n_top reduced when n_bot < 0); ties at the cut values: kept at the low one, dropped at
    the high one. θ_0 + λ Σ kept."""
    d = task_vectors(x, base)
    m = d.shape[1]
    out = np.zeros(m)
    for row in d:
        if density < 1:
            n_top = int(gamma * m)
            n_bot = m - int(density * m) - n_top
            if n_bot < 0:
                n_top, n_bot = n_top + n_bot, 0
            srt = np.sort(np.abs(row))
            # n_bot = m: none kept
            lo = srt[n_bot] if 0 < n_bot < m else (-np.inf if n_bot == 0 else np.inf)
            hi = srt[m - n_top] if n_top > 0 else np.inf
            row = np.where((np.abs(row) >= lo) & (np.abs(row) < hi), row, 0.0)
        out += row
    return np.asarray(base, np.float64) + lam * out


def ref_slerp(x, base, w, t=0.5, **_):
    """v0 = θ_1, v1 = θ_2; cosΩ = v0·v1 / (|v0||v1|); if |cosΩ| > 0.9995, (1-t) v0 + t v1, else
    sin((1-t)Ω)/sinΩ v0 + sin(tΩ)/sinΩ v1."""
    v0, v1 = np.asarray(x[0], np.float64), np.asarray(x[1], np.float64)
    c = v0 @ v1 / (np.linalg.norm(v0) * np.linalg.norm(v1))
    if abs(c) > 0.9995:
        return (1 - t) * v0 + t * v1
    om = np.arccos(c)
    return np.sin((1 - t) * om) / np.sin(om) * v0 + np.sin(t * om) / np.sin(om) * v1


REFERENCES = {"average": ref_average, "linear": ref_weighted, "task_arithmetic": ref_task_arithmetic,
              "ties": ref_ties, "dare_linear": ref_dare, "dare_ties": ref_dare_ties, "model_stock": ref_model_stock,
              "breadcrumbs": ref_breadcrumbs, "slerp": ref_slerp}


def reference(method, x, base, w, params=None, tensor="", shape=None):
    """REFERENCES[method] with the declared parameter names (lambda, density, ...) mapped to the formulas'."""
    kw = dict(params or {})
    if "lambda" in kw:
        kw["lam"] = kw.pop("lambda")
    if method in ("dare_linear", "dare_ties") and "density" in kw:
        kw["p"] = 1.0 - kw.pop("density")
    return REFERENCES[method](x, base, w, key=tensor, shape=shape, **kw)
