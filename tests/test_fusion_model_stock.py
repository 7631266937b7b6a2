"""model_stock on hand-worked examples (Jang et al. 2024; mergekit's reading for N > 2: the mean pairwise cosine).

t = N cos / (1 + (N − 1) cos); result θ_0 + t (mean θ_i − θ_0). Both the implementation and the independent
reference in `fusion_reference.py` must give the numbers worked out in the comments.
"""
from __future__ import annotations

import numpy as np
import pytest

from basefuse.errors import BasefuseError
from basefuse.fusion.methods import fuse_arrays
from fusion_reference import reference


def both(x, base, **params) -> list[np.ndarray]:
    x, base = np.asarray(x, np.float32), np.asarray(base, np.float32)
    shape = params.pop("shape", None)
    impl = fuse_arrays("model_stock", list(x.reshape(len(x), -1)), base.reshape(-1), shape=shape, **params)
    return [np.asarray(impl, np.float64), reference("model_stock", x.reshape(len(x), -1), base.reshape(-1),
                                                    None, params, shape=shape)]


def test_two_sources():
    # δ1 = [3, 4], δ2 = [4, 3]: cos = 24 / 25; t = 2 (24/25) / (1 + 24/25) = 48/49; mean δ = [3.5, 3.5]
    # θ_0 + t mean δ = [1, -1] + 48/49 * 3.5 = [1 + 24/7, -1 + 24/7]
    base = [1.0, -1.0]
    for got in both([[4.0, 3.0], [5.0, 2.0]], base):
        np.testing.assert_allclose(got, [31 / 7, 17 / 7], rtol=1e-6)


def test_three_sources_mean_pairwise_cosine():
    # δ = [1,1,0], [1,0,1], [0,1,1]: every pair cos = 1 / 2; t = 3 (1/2) / (1 + 2 (1/2)) = 3/4;
    # mean δ = [2/3, 2/3, 2/3]; θ_0 + 3/4 * 2/3 = θ_0 + 1/2
    base = np.array([0.5, -2.0, 4.0])
    x = base + np.array([[1.0, 1, 0], [1, 0, 1], [0, 1, 1]])
    for got in both(x, base):
        np.testing.assert_allclose(got, base + 0.5, rtol=1e-6)


def test_filter_wise_one_angle_per_row():
    # row 0 as in test_two_sources (t = 48/49, mean δ 3.5), row 1: δ [1, 0] and [0, 1], cos 0 -> t 0 (the base)
    base = np.zeros((2, 2))
    x = np.array([[[3.0, 4], [1, 0]], [[4.0, 3], [0, 1]]])
    want = np.array([[24 / 7, 24 / 7], [0, 0]]).reshape(-1)
    for got in both(x, base, filter_wise=True, shape=(2, 2)):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # per tensor instead: cos = (12 + 12 + 0) / (sqrt(26) sqrt(26)) = 24/26, t = 2 (12/13) / (25/13) = 24/25
    for got in both(x, base, shape=(2, 2)):
        np.testing.assert_allclose(got, 24 / 25 * x.mean(0).reshape(-1), rtol=1e-6)


def test_sources_equal_to_the_base_and_opposite_task_vectors_keep_the_base():
    base = [2.0, 3.0]
    for got in both([base, base], base):        # |δ| = 0: cos = 0 / 1e-6 = 0, t = 0
        np.testing.assert_allclose(got, base)
    for got in both([[3.0, 3.0], [1.0, 3.0]], base):   # cos = -1, N = 2: 1 + cos = 0, t = 0 (not a division by 0)
        np.testing.assert_allclose(got, base)


def test_unknown_parameter_is_refused():
    with pytest.raises(BasefuseError, match="no parameter 'lambda'"):
        fuse_arrays("model_stock", [np.ones(2), np.ones(2)], np.zeros(2), **{"lambda": 1.0})
