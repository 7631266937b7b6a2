"""slerp on hand-worked examples: sin((1−t)Ω)/sin Ω v0 + sin(tΩ)/sin Ω v1, Ω the angle between the two
tensors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from basefuse.errors import BasefuseError
from basefuse.fusion.methods import fuse_arrays
from fusion_reference import reference


def both(v0, v1, t) -> list[np.ndarray]:
    x = np.array([v0, v1], np.float32)
    return [np.asarray(fuse_arrays("slerp", list(x), t=t), np.float64), reference("slerp", x, None, None, {"t": t})]


def test_quarter_turn():
    # Ω = π/2: t = 1/2 -> [sin(π/4), sin(π/4)]; t = 1/3 -> [sin(π/3), sin(π/6)] = [√3/2, 1/2]
    for got in both([1.0, 0.0], [0.0, 1.0], 0.5):
        np.testing.assert_allclose(got, [math.sqrt(0.5)] * 2, rtol=1e-6)
    for got in both([1.0, 0.0], [0.0, 1.0], 1 / 3):
        np.testing.assert_allclose(got, [math.sqrt(3) / 2, 0.5], rtol=1e-6)


def test_lengths_are_interpolated_not_normalised():
    # same angle, the coefficients apply to the unnormalised tensors: [2 sin(π/4), 3 sin(π/4)]
    for got in both([2.0, 0.0], [0.0, 3.0], 0.5):
        np.testing.assert_allclose(got, [2 * math.sqrt(0.5), 3 * math.sqrt(0.5)], rtol=1e-6)


def test_colinear_tensors_interpolate_linearly():
    # cos Ω = 1 > 0.9995: (1 - t) v0 + t v1 = 0.75 [1, 2] + 0.25 [2, 4]
    for got in both([1.0, 2.0], [2.0, 4.0], 0.25):
        np.testing.assert_allclose(got, [1.25, 2.5], rtol=1e-6)


def test_exactly_two_sources():
    with pytest.raises(BasefuseError, match="exactly 2 sources, got 3"):
        fuse_arrays("slerp", [np.ones(2)] * 3)
