"""Coverage and size of every confirmatory test and printed interval, on simulated experiments (issue 16, item 2).

The simulation is in `stats_simulation.py` (shared with `scripts/stats_coverage.py`, which prints the full table of
docs/statistics.md). Required: at n = 9 and 15 targets, for normal, t(3) and lognormal(0.5) target effects, with seed
noise, with and without collapsed seeds, every 95 % interval covers at least 93 % and every test at 0.05 rejects a true null at most
6 % of the time. 4,000 experiments per cell: the binomial standard error at 0.95 is 0.0034, so a method at its nominal
level fails the 0.93 bar by chance with probability far below 1e-6; fixed seeds make the run deterministic anyway.
The old methods (chi-square interval of a spread, percentile bootstrap of the mean seed std) must fail the same bar
(with collapsed seeds), so the simulation has teeth.
"""
from __future__ import annotations

import pytest
import stats_simulation as sim

REPS = 4000
CELLS = [(d, n) for d in sim.REQUIRED_DISTS for n in sim.REQUIRED_NS]


@pytest.mark.slow
@pytest.mark.parametrize("collapse_p", sim.COLLAPSE_RATES)
@pytest.mark.parametrize("method", sim.NEW_METHODS)
def test_intervals_cover_and_tests_hold_their_size(method, collapse_p):
    cells = [sim.run_cell(method, d, n, REPS, collapse_p) for d, n in CELLS]
    failing = [c for c in cells if not c.passes]
    assert not failing, "\n".join(f"{c.method} {c.dist} n={c.n}: coverage {c.coverage:.3f}, size {c.size}"
                                  for c in failing)


@pytest.mark.slow
@pytest.mark.parametrize("method", sim.OLD_METHODS)
def test_the_old_methods_fail_the_same_bar(method):
    cells = [sim.run_cell(method, d, n, REPS) for d, n in CELLS]
    assert min(c.coverage for c in cells) < sim.COVERAGE_MIN
    assert any(not c.passes for c in cells)
