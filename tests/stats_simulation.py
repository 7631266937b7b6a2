"""Coverage and size of the report's intervals and tests on simulated experiments (one place for the slow test
`test_stats_simulation.py` and the table script `scripts/stats_coverage.py`).

Every simulated experiment has n targets and 3 seeds per base, seed noise of SD 1 point, target effects of SD 2 points
drawn from one of four shapes, and collapsed seeds: each finetuning run collapses with probability 2 % (or never: both
are run), which moves its gain by -15 points. "coverage" is the share of 95 % intervals that contain the true value, "size" the share of tests of
the true value that reject at 0.05.

* ``mean`` (C1, C2, C4 and every exploratory mean): per-target mean gains; `stats.mean_interval` / `stats.mean_p`. The
  true value is the population mean gain, collapses included (effect - 0.3).
* ``seed_std_ratio`` (C5): per target, the seed std of fused and of pretrained (3 seeds each), the seed-noise level
  varying over targets (lognormal, sigma 0.5), the noise *shape* the cell's distribution; fused's seed noise is r = 0.5
  times pretrained's on every target (coverage of r) or equal (size). Collapses hit both bases at the same rate and are
  contamination: the true value stays r. `exp(stats.mean_interval(stats.log_std_ratios(...)))` / `stats.mean_p`.
* ``spread_ratio`` (C3): per-target mean gains of two bases whose target effects are correlated (rho 0.5); the first's
  target SD is half the second's (coverage) or equal (size). The true value is the ratio of the mean absolute
  deviations from the median of the per-target mean gains, seed noise and collapses included (a large simulation).
  `stats.spread_ratio_interval` / `stats.spread_ratio_p`.
* ``old_chi2_spread`` and ``old_bootstrap_seed_std``: the methods the report printed before (reference versions here,
  since they leave stats.py): the chi-square interval of one base's spread of per-target gains (true value: its SD) and
  the percentile bootstrap over targets of the mean seed std (true value: the expected seed std, by a large simulation).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from basefuse.reports import stats

SEEDS, TARGET_SD, SEED_SD = 3, 2.0, 1.0
COLLAPSE_P, COLLAPSE = 0.02, -15.0  # run_cell sets COLLAPSE_P per cell (2 % or 0)
COLLAPSE_RATES = (0.02, 0.0)
ALPHA = 0.05
DISTS = ("normal", "t3", "lognormal0.5", "lognormal1")
REQUIRED_DISTS = ("normal", "t3", "lognormal0.5")
REQUIRED_NS = (9, 15)
ALL_NS = (3, 5, 9, 15)
COVERAGE_MIN, SIZE_MAX = 0.93, 0.06
SEED_STD_RATIO = 0.5     # fused / pretrained seed SD in the coverage cells of C5
TARGET_SD_RATIO = 0.5    # fused / intertrained target-effect SD in the coverage cells of C3
TARGET_RHO = 0.5         # correlation of two bases' target effects (C3)
NOISE_LEVEL_SIGMA = 0.5  # log-SD over targets of the seed-noise level (C5)


def standard(dist: str, rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    """Draws with mean 0 and SD 1 of the named shape."""
    if dist == "normal":
        return rng.standard_normal(size)
    if dist == "t3":
        return rng.standard_t(3, size) / math.sqrt(3)  # Var t(3) = 3
    if dist.startswith("lognormal"):
        s = float(dist.removeprefix("lognormal"))
        mean, var = math.exp(s * s / 2), (math.exp(s * s) - 1) * math.exp(s * s)
        return (np.exp(s * rng.standard_normal(size)) - mean) / math.sqrt(var)
    raise ValueError(dist)


def collapses(rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    return np.where(rng.random(size) < COLLAPSE_P, COLLAPSE, 0.0)


def seed_mean_var() -> float:
    """Variance that seed noise and collapses add to a per-target mean over SEEDS seeds."""
    return (SEED_SD ** 2 + COLLAPSE ** 2 * COLLAPSE_P * (1 - COLLAPSE_P)) / SEEDS


@dataclass(frozen=True)
class Cell:
    method: str
    dist: str
    n: int
    reps: int
    coverage: float
    size: float | None  # None where the method has no test
    collapse_p: float = 0.02

    @property
    def passes(self) -> bool:
        return self.coverage >= COVERAGE_MIN and (self.size is None or self.size <= SIZE_MAX)


# ---- the mean (C1, C2, C4) and the seed-std ratio (C5): the real functions, one call per experiment ----------------

def mean_gains(dist: str, n: int, reps: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Per-target mean gains (reps x n) and the true mean gain; the effect is 1 point before collapses."""
    effect = 1.0
    target = effect + TARGET_SD * standard(dist, rng, (reps, n))
    seeds = target[..., None] + SEED_SD * rng.standard_normal((reps, n, SEEDS)) + collapses(rng, (reps, n, SEEDS))
    return seeds.mean(axis=-1), effect + COLLAPSE_P * COLLAPSE


def seed_stds(dist: str, level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seed std (ddof 1, as the summary computes it) of SEEDS runs per target at the given noise levels."""
    runs = level[..., None] * standard(dist, rng, level.shape + (SEEDS,)) + collapses(rng, level.shape + (SEEDS,))
    return runs.std(axis=-1, ddof=1)


def std_pairs(dist: str, n: int, reps: int, ratio: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seed stds of fused (noise `ratio` x pretrained's) and of pretrained, reps x n, target-varying noise levels."""
    level = SEED_SD * np.exp(NOISE_LEVEL_SIGMA * rng.standard_normal((reps, n)))
    return seed_stds(dist, ratio * level, rng), seed_stds(dist, level, rng)


def _interval_cover(values: np.ndarray, truth: float, transform: Callable[[float], float] = float) -> float:
    hits = 0
    for row in values:
        ci = stats.mean_interval(row)
        hits += ci is not None and transform(ci[0]) <= truth <= transform(ci[1])
    return hits / len(values)


def _reject(values: np.ndarray) -> float:
    return float(np.mean([(p := stats.mean_p(row)) is not None and p < ALPHA for row in values]))


def cell_mean(dist: str, n: int, reps: int, rng: np.random.Generator) -> tuple[float, float]:
    gains, truth = mean_gains(dist, n, reps, rng)
    return _interval_cover(gains, truth), _reject(gains - truth)


def cell_seed_std_ratio(dist: str, n: int, reps: int, rng: np.random.Generator) -> tuple[float, float]:
    fused, pre = std_pairs(dist, n, reps, SEED_STD_RATIO, rng)
    logs = np.array([stats.log_std_ratios(a, b) for a, b in zip(fused, pre)])
    coverage = _interval_cover(logs, SEED_STD_RATIO, math.exp)
    fused0, pre0 = std_pairs(dist, n, reps, 1.0, rng)
    return coverage, _reject(np.array([stats.log_std_ratios(a, b) for a, b in zip(fused0, pre0)]))


# ---- the spread ratio (C3) ------------------------------------------------------------------------------------------

def spread_pairs(dist: str, n: int, reps: int, sd_ratio: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-target mean gains of two bases (reps x n each), the first with `sd_ratio` x the second's target SD, and the
    ratio of the SDs of those per-target means (what the old chi-square interval was read against)."""
    shared = standard(dist, rng, (reps, n))

    def gains(target_sd: float) -> np.ndarray:
        effect = math.sqrt(TARGET_RHO) * shared + math.sqrt(1 - TARGET_RHO) * standard(dist, rng, (reps, n))
        noise = SEED_SD * rng.standard_normal((reps, n, SEEDS)) + collapses(rng, (reps, n, SEEDS))
        return target_sd * effect + noise.mean(axis=-1)

    a, b = gains(sd_ratio * TARGET_SD), gains(TARGET_SD)
    v = seed_mean_var()
    return a, b, math.sqrt(((sd_ratio * TARGET_SD) ** 2 + v) / (TARGET_SD ** 2 + v))


def mad_ratio(dist: str) -> float:
    """The true `stats.spread_ratio` of the coverage cells (mean absolute deviations from the median), by a large
    simulation with its own fixed seed."""
    rng = np.random.default_rng([11, DISTS.index(dist)])
    a, b, _ = spread_pairs(dist, 1, 2_000_000, TARGET_SD_RATIO, rng)
    return float(np.mean(np.abs(a - np.median(a))) / np.mean(np.abs(b - np.median(b))))


def cell_spread_ratio(dist: str, n: int, reps: int, rng: np.random.Generator) -> tuple[float, float]:
    if n < stats.MIN_TARGETS_SPREAD:  # no interval is printed: nothing to cover
        return math.nan, math.nan
    a, b, _ = spread_pairs(dist, n, reps, TARGET_SD_RATIO, rng)
    truth = mad_ratio(dist)
    hits = 0
    for x, y in zip(a, b):
        ci = stats.spread_ratio_interval(x, y)
        hits += ci is not None and ci[0] <= truth <= ci[1]
    a0, b0, _ = spread_pairs(dist, n, reps, 1.0, rng)  # same law for both: the true ratio is 1
    rejects = [(p := stats.spread_ratio_p(x, y)) is not None and p < ALPHA for x, y in zip(a0, b0)]
    return hits / reps, float(np.mean(rejects))


# ---- the old methods (reference versions) ---------------------------------------------------------------------------

def chi2_std_interval(values: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Chi-square interval of the SD of each row (normal model): sqrt(df s^2 / chi2 quantiles)."""
    df = values.shape[1] - 1
    ss = df * values.var(axis=1, ddof=1)
    a = (1 - level) / 2
    return np.column_stack([np.sqrt(ss / sps.chi2.ppf(1 - a, df)), np.sqrt(ss / sps.chi2.ppf(a, df))])


def percentile_bootstrap_mean(values: np.ndarray, rng: np.random.Generator, n_boot: int = 1000,
                              level: float = 0.95) -> np.ndarray:
    """Percentile bootstrap interval of the mean of each row (resampling its values)."""
    a = (1 - level) / 2 * 100
    out = np.empty((len(values), 2))
    for i, row in enumerate(values):
        means = row[rng.integers(0, row.size, size=(n_boot, row.size))].mean(axis=1)
        out[i] = np.percentile(means, [a, 100 - a])
    return out


def cell_old_chi2_spread(dist: str, n: int, reps: int, rng: np.random.Generator) -> tuple[float, None]:
    _, b, _ = spread_pairs(dist, n, reps, 1.0, rng)
    truth = math.sqrt(TARGET_SD ** 2 + seed_mean_var())
    ci = chi2_std_interval(b)
    return float(np.mean((ci[:, 0] <= truth) & (truth <= ci[:, 1]))), None


def expected_seed_std(dist: str) -> float:
    """E[seed std] over targets and seeds, by a large simulation with its own fixed seed."""
    rng = np.random.default_rng([7, DISTS.index(dist)])
    level = SEED_SD * np.exp(NOISE_LEVEL_SIGMA * rng.standard_normal(2_000_000))
    return float(seed_stds(dist, level, rng).mean())


def cell_old_bootstrap_seed_std(dist: str, n: int, reps: int, rng: np.random.Generator) -> tuple[float, None]:
    _, pre = std_pairs(dist, n, reps, 1.0, rng)
    truth = expected_seed_std(dist)
    ci = percentile_bootstrap_mean(pre, rng)
    return float(np.mean((ci[:, 0] <= truth) & (truth <= ci[:, 1]))), None


METHODS: dict[str, Callable[[str, int, int, np.random.Generator], tuple[float, float | None]]] = {
    "mean": cell_mean,
    "seed_std_ratio": cell_seed_std_ratio,
    "spread_ratio": cell_spread_ratio,
    "old_chi2_spread": cell_old_chi2_spread,
    "old_bootstrap_seed_std": cell_old_bootstrap_seed_std,
}
NEW_METHODS = ("mean", "seed_std_ratio", "spread_ratio")
OLD_METHODS = ("old_chi2_spread", "old_bootstrap_seed_std")


def run_cell(method: str, dist: str, n: int, reps: int, collapse_p: float = 0.02) -> Cell:
    """One cell, deterministic: its RNG is seeded by the method, the distribution, n and the collapse rate.

    Collapses are run both ways because they cut both ways: a collapse moves a gain down, which partly cancels the
    right skew of lognormal target effects (the t-interval alone covers 0.95 with them, 0.93 without)."""
    global COLLAPSE_P
    rng = np.random.default_rng([list(METHODS).index(method), DISTS.index(dist), n, round(1000 * collapse_p)])
    saved, COLLAPSE_P = COLLAPSE_P, collapse_p  # read by collapses() and the true values; restored below
    try:
        coverage, size = METHODS[method](dist, n, reps, rng)
    finally:
        COLLAPSE_P = saved
    return Cell(method, dist, n, reps, coverage, size, collapse_p)
