"""Realised coverage of the report's 95% interval on simulated paired experiments.

Each simulated experiment has n targets; target i's true gain is effect + N(0, 2^2) (targets
differ), each of 3 seeds adds N(0, 1.5^2) finetuning noise; the report's interval (`mean_interval`,
the hull of the t and Hall intervals) is built from the per-target mean gains and should contain the
population effect in 95% of experiments.
1,500 experiments per cell: the binomial standard error of a 95% coverage is 0.56 points, so the
tolerance of 2.5 points is about 4.5 standard errors (deterministic anyway: fixed seed). The skewed, heavy-tailed
and collapsed-seed cases are in test_stats_simulation.py (slow).
"""
from __future__ import annotations

import numpy as np
import pytest

from basefuse.reports.stats import mean_interval

N_SIM, SEEDS, TARGET_SD, SEED_SD = 1500, 3, 2.0, 1.5
TOLERANCE = 0.025


def coverage(n_targets: int, effect: float, rng: np.random.Generator) -> float:
    true_gain = effect + rng.normal(0, TARGET_SD, size=(N_SIM, n_targets))
    seed_gains = true_gain[..., None] + rng.normal(0, SEED_SD, size=(N_SIM, n_targets, SEEDS))
    per_target = seed_gains.mean(axis=-1)
    hits = 0
    for row in per_target:
        lo, hi = mean_interval(row)
        hits += lo <= effect <= hi
    return hits / N_SIM


@pytest.mark.parametrize("n_targets", [5, 9, 15])
@pytest.mark.parametrize("effect", [0.0, 1.0, 3.0])
def test_95_interval_covers_near_nominal(n_targets, effect):
    rng = np.random.default_rng(1000 * n_targets + int(10 * effect))
    realised = coverage(n_targets, effect, rng)
    assert abs(realised - 0.95) <= TOLERANCE, f"coverage {realised:.3f} at n={n_targets}, effect={effect}"


def test_no_interval_below_three_targets():
    assert mean_interval([1.0, 2.0]) is None
    assert mean_interval([1.0, 2.0, 3.0]) is not None
