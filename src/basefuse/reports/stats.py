"""Small-sample inference for the report: intervals, tests, Holm adjustment, verdicts.

Pure functions over plain numbers (accuracy points); no records, no I/O.

Why these methods (docs/statistics.md has the assumptions and the full coverage table; tests/stats_simulation.py
measures it). The unit of generalisation is the *target task*: a claim such as "fused bases beat pretrained" is about
targets not yet tried, so the sample size is the number of targets, not of runs; every target contributes one number.
The bar: a 95 % interval covers at least 93 % and a test at 0.05 rejects a true null at most 6 % of the time at 9 and
15 targets, for normal, t(3) and lognormal(0.5) target effects, with seed noise, with and without collapsed seeds.

* **A mean over targets** (C1, C2, C4, every exploratory mean): `mean_interval`, the hull of the Student-t and Hall's
  (1992) transformed-t intervals, and `mean_p`, the larger of their p-values, so p < 0.05 exactly when 0 is outside
  the interval. Coverage 0.945-0.964 at n = 9 and 15, 0.942-0.971 at n = 3 and 5; strongly skewed effects
  (lognormal(1), no collapses) get only 0.89-0.91. Neither assumes symmetry: the exact sign flip used before tested
  symmetry, not the mean, and could not go below p = 2/2^n.
* **Seed sensitivity** (C5): the mean of per-target `log_std_ratios`, exponentiated: 0.949-0.973 in every cell. The
  percentile bootstrap of the mean seed std used before covered 0.49-0.75.
* **Dependence on the target** (C3): `spread_ratio`, the ratio of mean absolute deviations from the median, with
  `mean_interval` of its linearisation: 0.943-0.977 at n = 9 and 15 (lognormal(1): 0.933 and 0.921), printed
  from 5 targets. At n = 9 and 15 the chi-square interval of an SD used before covered 0.70-0.915; a permutation
  test of the SD ratio, 0.89-0.91.
* **Below `MIN_TARGETS`** (and `MIN_TARGETS_SPREAD` for C3) no interval is printed, nor when all values are equal
  (accuracies on a small test set often are): a zero-width interval would claim a certainty that a few values cannot
  give, and the verdict is then "inconclusive".
* **Verdict** needs both: "better" iff the interval lies above 0 and the (Holm-adjusted) p < alpha; "worse" mirrored.
* **Power**: `detectable_effect` is the smallest true mean the t-test detects with 80 % power (noncentral t);
  `mean_p` is at least as strict, so the printed test needs at least that.

"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MIN_TARGETS = 3  # below this no interval is printed ("n/a (n=2)")
MIN_TARGETS_SPREAD = 5  # the spread ratio's interval covers 0.91 at n = 3 (docs/statistics.md): none printed below 5
MIN_SEEDS = 3    # a per-target verdict needs at least this many seeds
ALPHA = 0.05
LEVEL = 0.95

BETTER, WORSE, INCONCLUSIVE, TOO_FEW_SEEDS = "better", "worse", "inconclusive", "too few seeds"


# ---- distributions (closed forms for integer degrees of freedom; no scipy needed) ----------

def t_cdf(x: float, df: int) -> float:
    """P(T <= x) for Student's t with integer `df` (Abramowitz & Stegun 26.7.3/26.7.4)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    theta = math.atan(abs(x) / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:  # odd
        term, acc = 1.0, 0.0
        if df > 1:
            acc = term = 1.0
            for k in range(2, df - 1, 2):  # 1 + 2/3 c^2 + 2*4/(3*5) c^4 + ...
                term *= c2 * k / (k + 1)
                acc += term
        inside = 2 / math.pi * (theta + (s * math.cos(theta) * acc if df > 1 else 0.0))
    else:
        term = acc = 1.0
        for k in range(1, df - 2, 2):  # 1 + 1/2 c^2 + 1*3/(2*4) c^4 + ...
            term *= c2 * k / (k + 1)
            acc += term
        inside = s * acc
    return 0.5 + math.copysign(inside / 2, x)


def _invert(cdf: Callable[[float], float], q: float, lo: float, hi: float) -> float:
    while cdf(hi) < q:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, abs(hi)):
            break
    return (lo + hi) / 2


@functools.lru_cache(maxsize=256)
def t_quantile(q: float, df: int) -> float:
    if not 0 < q < 1:
        raise ValueError("q must be in (0, 1)")
    lower = min(q, 1 - q)  # invert on the lower half, where the CDF is below 0.5; symmetric above
    x = _invert(lambda v: t_cdf(v, df), lower, -1e7, 0.0)
    return -x if q > 0.5 else x


# ---- intervals and tests ----------------------------------------------------------------------

def _spread(values: Sequence[float]) -> np.ndarray | None:
    """The values as an array, or None below MIN_TARGETS values or when all are equal up to float rounding
    (a mean of 0.1 and 0.2 is not exactly 0.3): no interval then."""
    x = np.asarray(values, dtype=float)
    if x.size < MIN_TARGETS or float(np.ptp(x)) <= 1e-9 * max(1.0, float(np.abs(x).max())):
        return None
    return x


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """Student-t interval of the mean; None below MIN_TARGETS values or with all values equal."""
    x = _spread(values)
    if x is None:
        return None
    half = t_quantile(1 - (1 - level) / 2, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


def t_test_p(values: Sequence[float]) -> float | None:
    """Two-sided one-sample t-test of mean 0 (per-target verdicts over seeds)."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return None
    sd = float(x.std(ddof=1))
    if sd == 0:
        return 1.0 if x.mean() == 0 else 0.0
    t = float(x.mean()) / (sd / math.sqrt(x.size))
    return 2 * (1 - t_cdf(abs(t), x.size - 1))


def holm(pvalues: Mapping[str, float | None]) -> dict[str, float | None]:
    """Holm step-down adjusted p-values (family-wise error over the given comparisons)."""
    present = sorted((p, k) for k, p in pvalues.items() if p is not None)
    out: dict[str, float | None] = dict.fromkeys(pvalues)
    running, m = 0.0, len(present)
    for i, (p, k) in enumerate(present):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


# ---- the mean over targets: a t-interval that survives skewed target effects -----------------

def skewness(values: Sequence[float]) -> float:
    """Sample skewness m3 / s^3 (m3 the mean cubed deviation, s with ddof=1), as Hall's transformation uses it."""
    x = np.asarray(values, dtype=float)
    s = float(x.std(ddof=1))
    return float(np.mean((x - x.mean()) ** 3)) / s ** 3 if s > 0 else 0.0


def _hall(x: np.ndarray, mu: float) -> float:
    """Hall's (1992) skewness-removing transformation of the studentised mean, scaled by sqrt(n).

    T1 = T + g T^2 / 3 + g^2 T^3 / 27 + g / (6 n) with T = (mean - mu) / s: monotone in T for any g, so the
    test it gives and the interval it inverts to agree."""
    n, g = x.size, skewness(x)
    t = (float(x.mean()) - mu) / float(x.std(ddof=1))
    return math.sqrt(n) * (t + g * t * t / 3 + g * g * t ** 3 / 27 + g / (6 * n))


def hall_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """Interval for the mean from Hall's transformed t, with Student-t quantiles (n - 1 df)."""
    x = _spread(values)
    if x is None:
        return None
    n, g, m, s = x.size, skewness(x), float(x.mean()), float(x.std(ddof=1))
    q = t_quantile(1 - (1 - level) / 2, n - 1) / math.sqrt(n)
    b = g / (6 * n)
    if abs(g) < 1e-9:  # the transformation is then T + b with b = 0
        return m - s * q, m + s * q

    def inverse(t1: float) -> float:  # T such that T1(T) = t1
        return 3 / g * (float(np.cbrt(1 + g * (t1 - b))) - 1)

    return m - s * inverse(q), m - s * inverse(-q)


def hall_p(values: Sequence[float]) -> float | None:
    """Two-sided p of mean 0 from Hall's transformed t (agrees with `hall_interval`)."""
    x = _spread(values)
    if x is None:
        return None
    return 2 * (1 - t_cdf(abs(_hall(x, 0.0)), x.size - 1))


def mean_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """The interval printed for every mean over targets: the hull of the Student-t and Hall intervals.

    Either alone under-covers skewed target effects on one side (see docs/statistics.md); the hull covers
    whenever either does. None below MIN_TARGETS values or with all values equal."""
    t, h = t_interval(values, level), hall_interval(values, level)
    if t is None or h is None:
        return None
    return min(t[0], h[0]), max(t[1], h[1])


def mean_p(values: Sequence[float]) -> float | None:
    """p of mean 0 that agrees with `mean_interval`: the larger of the t-test's and Hall's p (reject only if both do)."""
    x = _spread(values)
    if x is None:
        return None
    return max(t_test_p(x), hall_p(x))  # type: ignore[type-var]


def effect_size(values: Sequence[float]) -> float | None:
    """Standardised mean (d_z): mean over the per-target values divided by their SD; None below 2 or with SD 0."""
    x = np.asarray(values, dtype=float)
    if x.size < 2 or float(x.std(ddof=1)) == 0:
        return None
    return float(x.mean() / x.std(ddof=1))


# ---- ratios of standard deviations ------------------------------------------------------------

# Points added to both seed stds before their log ratio, so that targets where every seed tied stay finite
# (with 3 seeds it pulls a log ratio towards 0 by about 1.8 x floor x (1/sd_small - 1/sd_large); 0.1 cost up to
# 6 points of coverage at n = 15 where the smaller seed SD was about 0.5 points).
SEED_STD_FLOOR = 0.02


def log_std_ratios(a: Sequence[float], b: Sequence[float], floor: float = SEED_STD_FLOOR) -> list[float]:
    """Per target, log((std_a + floor) / (std_b + floor)).

    With the same number of seeds for both bases and normal seed noise, each value is symmetric about the log of
    the true ratio (log F is symmetric for equal degrees of freedom), which makes a mean test over targets honest
    whatever the targets' own noise levels; the floor pulls the ratio towards 1 (the test keeps its size; the interval
    loses a little coverage of the true ratio, under 1 point at seed SDs of 0.5 points and up)."""
    return [math.log((x + floor) / (y + floor)) for x, y in zip(a, b, strict=True)]


def log_std_ratio_sd(n_seeds: int) -> float:
    """SD of log(s_a / s_b) for two independent normal samples of `n_seeds` each: sqrt(trigamma((k-1)/2) / 2)."""
    from scipy.special import polygamma

    if n_seeds < 2:
        raise ValueError("a seed std needs at least 2 seeds")
    return math.sqrt(float(polygamma(1, (n_seeds - 1) / 2)) / 2)


def _spread_terms(a: Sequence[float], b: Sequence[float]) -> tuple[float, np.ndarray] | None:
    """log(D_a / D_b), D the mean absolute deviation from the median, and its per-target linearisation
    z_a / D_a - z_b / D_b (z the absolute deviations), whose mean is 0 and whose spread is the estimate's."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size != y.size:
        raise ValueError("a and b must be paired by target")
    if x.size < MIN_TARGETS_SPREAD:
        return None
    za, zb = np.abs(x - np.median(x)), np.abs(y - np.median(y))
    da, db = float(za.mean()), float(zb.mean())
    if da <= 1e-12 * max(1.0, float(np.abs(x).max())) or db <= 1e-12 * max(1.0, float(np.abs(y).max())):
        return None
    return math.log(da / db), za / da - zb / db


def spread_ratio(a: Sequence[float], b: Sequence[float]) -> float | None:
    """How much more `a` varies over targets than `b`: the ratio of their mean absolute deviations from the median
    (the estimand of `spread_ratio_interval`; equal to the ratio of SDs when both have the same shape)."""
    terms = _spread_terms(a, b)
    return None if terms is None else math.exp(terms[0])


def spread_ratio_interval(a: Sequence[float], b: Sequence[float],
                          level: float = LEVEL) -> tuple[float, float] | None:
    """Interval for `spread_ratio` of values paired by target: log ratio + `mean_interval` of its linearisation.

    Not the chi-square interval of an SD (it assumes normal values; heavy tails or a collapsed seed break it), nor a
    permutation test of the ratio of SDs (it needs the two bases' values exchangeable once scaled, which a collapse of
    fixed size is not): both covered 0.84-0.91 at n = 9 and 15 (docs/statistics.md). Deviations from the median and a
    skew-robust mean test hold there. None below MIN_TARGETS_SPREAD or when either sample has no spread."""
    terms = _spread_terms(a, b)
    if terms is None:
        return None
    log_ratio, u = terms
    ci = mean_interval(u, level)
    return None if ci is None else (math.exp(log_ratio + ci[0]), math.exp(log_ratio + ci[1]))


def spread_ratio_p(a: Sequence[float], b: Sequence[float], ratio: float = 1.0) -> float | None:
    """Two-sided p of "`spread_ratio` = ratio": `mean_p` of the linearisation shifted by log(estimate / ratio), so
    p < alpha exactly when `ratio` lies outside `spread_ratio_interval` at level 1 - alpha."""
    terms = _spread_terms(a, b)
    if terms is None:
        return None
    log_ratio, u = terms
    return mean_p(u + log_ratio - math.log(ratio))


# ---- what a planned n can show ---------------------------------------------------------------

def mean_power(effect: float, n: int, sd: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample t-test at level alpha for a true mean `effect` with per-target SD `sd`
    (noncentral t; the test printed is at least as strict, so this is an upper bound for it)."""
    from scipy import stats as sps

    if n < 2 or sd <= 0:
        return float("nan")
    crit = float(sps.t.ppf(1 - alpha / 2, n - 1))
    nc = effect / (sd / math.sqrt(n))
    return float(sps.nct.sf(crit, n - 1, nc) + sps.nct.cdf(-crit, n - 1, nc))


def detectable_effect(n: int, sd: float, alpha: float = ALPHA, power: float = 0.8) -> float | None:
    """The smallest true mean the t-test detects with `power` at level alpha, n targets and per-target SD `sd`."""
    if n < MIN_TARGETS or sd <= 0:
        return None
    lo, hi = 0.0, sd
    while mean_power(hi, n, sd, alpha) < power:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_power(mid, n, sd, alpha) < power else (lo, mid)
    return hi


# ---- estimates with their n and verdict -----------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    """A mean over targets with its interval (None below the minimum n), p-value and sample sizes."""

    mean: float
    interval: tuple[float, float] | None
    p: float | None
    n_targets: int
    seeds: tuple[int, int]  # fewest and most seeds per target
    p_holm: float | None = None
    sd: float | None = None  # SD of the per-target values: effect size and the observed detectable effect

    @property
    def effect_size(self) -> float | None:
        return self.mean / self.sd if self.sd else None

    @property
    def p_used(self) -> float | None:
        return self.p_holm if self.p_holm is not None else self.p


def estimate(per_target: Mapping[str, Sequence[float]]) -> Estimate | None:
    """Mean over targets of the per-target mean, with `mean_interval` and `mean_p` over those means."""
    groups = [np.asarray(v, dtype=float) for v in per_target.values() if len(v)]
    if not groups:
        return None
    means = [float(g.mean()) for g in groups]
    sizes = [g.size for g in groups]
    return Estimate(float(np.mean(means)), mean_interval(means), mean_p(means), len(means),
                    (min(sizes), max(sizes)), sd=float(np.std(means, ddof=1)) if len(means) > 1 else None)


def seed_estimate(values: Sequence[float]) -> Estimate | None:
    """One target's mean gain over seeds: t-interval and t-test over seeds (verdict needs MIN_SEEDS)."""
    x = [float(v) for v in values]
    if not x:
        return None
    ci = t_interval(x) if len(x) >= MIN_SEEDS else None
    return Estimate(float(np.mean(x)), ci, t_test_p(x), 1, (len(x), len(x)))


def verdict(est: Estimate | None, alpha: float = ALPHA, *, min_n: int = MIN_TARGETS, n: int | None = None) -> str:
    """"better"/"worse" only when the interval excludes 0 on that side AND the (adjusted) p < alpha."""
    if est is None or est.interval is None or (n if n is not None else est.n_targets) < min_n:
        return INCONCLUSIVE
    p = est.p_used
    if p is None or p >= alpha:
        return INCONCLUSIVE
    lo, hi = est.interval
    return BETTER if lo > 0 else WORSE if hi < 0 else INCONCLUSIVE


def seed_verdict(est: Estimate | None, alpha: float = ALPHA) -> str:
    if est is None or est.seeds[0] < MIN_SEEDS:
        return TOO_FEW_SEEDS
    return verdict(est, alpha, min_n=MIN_SEEDS, n=est.seeds[0])

