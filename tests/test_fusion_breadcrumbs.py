"""breadcrumbs on hand-worked examples (Davari & Belilovsky 2024; mergekit's `magnitude_outliers`
mask).

Per task vector of m entries ranked by |δ|: n_top = int(gamma m) largest dropped, n_bot = m − int(density m) − n_top
smallest dropped (n_top reduced when that is negative); θ_0 + λ Σ δ̃_i.
"""
from __future__ import annotations

import numpy as np

from basefuse.fusion.methods import fuse_arrays
from fusion_reference import reference

MAGS = np.array([0.5, -0.1, 0.9, 0.3, -1.0, 0.2, 0.7, -0.4, 0.6, 0.8])   # |δ| = 0.1 .. 1.0, each once
BASE = np.linspace(-1, 1, 10)


def both(deltas, **params) -> list[np.ndarray]:
    x = (BASE + np.asarray(deltas)).astype(np.float32)
    b = BASE.astype(np.float32)
    impl = fuse_arrays("breadcrumbs", list(x), b, **params)
    return [np.asarray(impl, np.float64), reference("breadcrumbs", x, b, None, params)]


def test_drops_outliers_and_the_smallest():
    # m = 10, density 0.7, gamma 0.1: n_top = 1 (drops |δ| 1.0), n_bot = 10 - 7 - 1 = 2 (drops 0.1, 0.2)
    kept = np.where(np.isin(np.abs(MAGS), [1.0, 0.1, 0.2]), 0.0, MAGS)
    other = MAGS[::-1].copy()       # the second source: same magnitudes, reversed order
    kept2 = np.where(np.isin(np.abs(other), [1.0, 0.1, 0.2]), 0.0, other)
    for got in both([MAGS, other], density=0.7, gamma=0.1, **{"lambda": 0.5}):
        np.testing.assert_allclose(got, BASE + 0.5 * (kept + kept2), atol=1e-6)


def test_fewer_outliers_dropped_when_both_do_not_fit():
    # density 0.95 keeps int(9.5) = 9, gamma 0.2 would drop 2: n_bot = 10 - 9 - 2 = -1 -> n_top 1, n_bot 0
    kept = np.where(np.abs(MAGS) == 1.0, 0.0, MAGS)
    for got in both([MAGS, MAGS], density=0.95, gamma=0.2):
        np.testing.assert_allclose(got, BASE + 2 * kept, atol=1e-6)


def test_density_one_is_task_arithmetic():
    for got in both([MAGS, -MAGS / 2], density=1.0, gamma=0.1):
        np.testing.assert_allclose(got, BASE + MAGS / 2, atol=1e-6)
