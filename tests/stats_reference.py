"""Independent reference values for the report's mean interval and test (scipy and root finding, not stats.py's
closed forms), for the tests that check numbers in tables, figures and the summary."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize
from scipy import stats as sps


def hall_t1(values: Sequence[float], mu: float) -> float:
    """Hall (1992): sqrt(n) (T + g T^2 / 3 + g^2 T^3 / 27 + g / (6 n)), T = (mean - mu) / s, g = m3 / s^3, s ddof 1;
    g from scipy's biased skewness m3 / m2^1.5 rescaled by (m2 / s^2)^1.5 = ((n - 1) / n)^1.5."""
    x = np.asarray(values, dtype=float)
    n = x.size
    g = float(sps.skew(x, bias=True)) * ((n - 1) / n) ** 1.5
    t = (x.mean() - mu) / x.std(ddof=1)
    return math.sqrt(n) * (t + g * t * t / 3 + g * g * t ** 3 / 27 + g / (6 * n))


def hull_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Hull of the Student-t interval (scipy) and Hall's interval (the mu where T1 meets -+ the t quantile, by
    Brent's method: T1 falls monotonically in mu)."""
    x = np.asarray(values, dtype=float)
    n, m, s = x.size, float(x.mean()), float(x.std(ddof=1))
    q = float(sps.t.ppf(1 - (1 - level) / 2, n - 1))
    t_lo, t_hi = m - q * s / math.sqrt(n), m + q * s / math.sqrt(n)
    lo = optimize.brentq(lambda mu: hall_t1(x, mu) - q, m - 1e3 * s, m + 1e3 * s, xtol=1e-13)
    hi = optimize.brentq(lambda mu: hall_t1(x, mu) + q, m - 1e3 * s, m + 1e3 * s, xtol=1e-13)
    return min(t_lo, lo), max(t_hi, hi)


def hull_p(values: Sequence[float]) -> float:
    """The larger of the one-sample t-test's p (scipy) and Hall's p (t distribution, n - 1 df)."""
    x = np.asarray(values, dtype=float)
    return max(float(sps.ttest_1samp(x, 0.0).pvalue), 2 * float(sps.t.sf(abs(hall_t1(x, 0.0)), x.size - 1)))
