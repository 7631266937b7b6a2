"""Every fusion method on a hand-worked example: N = 3, a non-zero base, non-uniform weights.

The expected numbers are worked out by hand in the comments (values are dyadic, so exact in
float32); both the implementation and the independent references in `fusion_reference.py`
(which the streaming property test uses) must reproduce them.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from basefuse.fusion.methods import METHODS, fuse_arrays, get_method, normalise_weights
from fusion_reference import REFERENCES, reference

BASE = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
DELTAS = np.array([[2.0, -1.0, 0.5, 0.0],     # task vectors θ_i − θ_0
                   [-1.0, -3.0, 1.0, 4.0],
                   [4.0, 2.0, -0.25, -1.0]], np.float32)
X = BASE + DELTAS
RAW_WEIGHTS = [5.0, 3.0, 2.0]                 # normalised: 0.5, 0.3, 0.2


def both(method: str, w: np.ndarray, tensor: str = "", **params) -> list[np.ndarray]:
    """The implementation's and the reference's result on the example."""
    m = get_method(method)
    impl = fuse_arrays(m, list(X), BASE, w if m.weights != "ignored" else None, tensor=tensor, **params)
    return [np.asarray(impl, np.float64), reference(method, X, BASE, w, params, tensor)]


def uniform() -> np.ndarray:
    return normalise_weights(get_method("average"), None, 3)


def test_average():
    # mean of θ_i = θ_0 + (Σ δ_i)/3, Σ δ = [5, -2, 1.25, 3]
    want = [1 + 5 / 3, -2 - 2 / 3, 0.5 + 1.25 / 3, 3 + 1]
    for got in both("average", uniform()):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_weighted_normalises_the_given_weights():
    w = normalise_weights(get_method("linear"), RAW_WEIGHTS, 3)
    np.testing.assert_allclose(w, [0.5, 0.3, 0.2])
    # θ_0 + .5 δ_0 + .3 δ_1 + .2 δ_2:  1+1-.3+.8, -2-.5-.9+.4, .5+.25+.3-.05, 3+0+1.2-.2
    for got in both("linear", w):
        np.testing.assert_allclose(got, [2.5, -3.0, 1.0, 4.0], rtol=1e-6)


def test_task_arithmetic_with_lambda_not_one_over_n():
    # θ_0 + 0.4 Σ δ_i = [1, -2, .5, 3] + 0.4 [5, -2, 1.25, 3] = [3, -2.8, 1, 4.2]
    for got in both("task_arithmetic", uniform(), **{"lambda": 0.4}):
        np.testing.assert_allclose(got, [3.0, -2.8, 1.0, 4.2], rtol=1e-6)
    # not the average (as it would be with lam = 1/N and a zero base)
    assert not np.allclose(both("task_arithmetic", uniform(), **{"lambda": 0.4})[0], X.mean(0))


def test_ties_trim_elect_disjoint_mean():
    # density 0.5 keeps the 2 largest |δ| of each row:
    #   δ_0 [2, -1, .5, 0]   -> [2, -1, 0, 0]
    #   δ_1 [-1, -3, 1, 4]   -> [0, -3, 0, 4]
    #   δ_2 [4, 2, -.25, -1] -> [4,  2, 0, 0]
    # elected sign of the trimmed sum [6, -2, 0, 4]: [+, -, 0, +]
    # disjoint mean of the agreeing entries: [(2+4)/2, (-1-3)/2, none -> 0, 4/1] = [3, -2, 0, 4]
    trimmed_elected_merged = np.array([3.0, -2.0, 0.0, 4.0])
    for lam in (1.0, 0.5):
        want = BASE + lam * trimmed_elected_merged          # [4, -4, .5, 7] at lam 1
        for got in both("ties", uniform(), density=0.5, **{"lambda": lam}):
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_dare_mask_from_the_documented_generator_and_rescale():
    p, seed, key = 0.5, 3, "layer.weight"
    # the documented contract: keep where default_rng([seed, crc32(name)]).random((N, m), float32) >= p
    keep = np.random.default_rng([seed, zlib.crc32(key.encode())]).random((3, 4), dtype=np.float32) >= p
    assert 0 < keep.sum() < keep.size, "the example must drop some entries and keep others"
    w = normalise_weights(get_method("dare_linear"), RAW_WEIGHTS, 3)
    want = BASE.astype(np.float64).copy()
    for i in range(3):
        for j in range(4):
            if keep[i, j]:
                want[j] += w[i] * DELTAS[i, j] / (1 - p)         # the kept entries are rescaled by 1/(1-p) = 2
    for got in both("dare_linear", w, density=1 - p, seed=seed, tensor=key):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    lam = 0.7
    for got in both("dare_linear", w, density=1 - p, seed=seed, tensor=key, **{"lambda": lam}):
        np.testing.assert_allclose(got, BASE + lam * (want - BASE), rtol=1e-6)


def test_dare_ties_elects_on_the_weighted_kept_vectors():
    # density 1 (nothing dropped), weights .5 .3 .2: weighted δ columns
    #   col 0: [1, -.3, .8]   sum 1.5 -> +, agreeing 1 + .8 = 1.8        (normalize: / (.5 + .2) -> 18/7)
    #   col 1: [-.5, -.9, .4] sum -1  -> -, agreeing -1.4                (normalize: / .8 -> -1.75)
    #   col 2: [.25, .3, -.05] sum .5 -> +, agreeing .55                 (normalize: / .8 -> .6875)
    #   col 3: [0, 1.2, -.2]  sum 1   -> +, agreeing 1.2                 (normalize: / .3 -> 4)
    w = normalise_weights(get_method("dare_ties"), RAW_WEIGHTS, 3)
    for got in both("dare_ties", w, density=1.0):
        np.testing.assert_allclose(got, BASE + [1.8, -1.4, 0.55, 1.2], rtol=1e-6)
    for got in both("dare_ties", w, density=1.0, normalize=True, **{"lambda": 0.5}):
        np.testing.assert_allclose(got, BASE + 0.5 * np.array([18 / 7, -1.75, 0.6875, 4.0]), rtol=1e-6)


# the data-aware methods (fisher, regmean) have theirs in test_fusion_data_methods.py
@pytest.mark.parametrize("method", sorted(m for m in METHODS if not METHODS[m].side_inputs))
def test_every_method_has_a_reference(method):
    assert method in REFERENCES
