"""Print the coverage and size table of docs/statistics.md (every method, distribution and n of
tests/stats_simulation.py). Usage: .venv/bin/python scripts/stats_coverage.py [--reps 4000]  (about 4 minutes)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import stats_simulation as sim  # noqa: E402

LABELS = {"mean": "mean (C1, C2, C4, exploratory)", "seed_std_ratio": "seed-std ratio (C5)",
          "spread_ratio": "spread ratio (C3)", "old_chi2_spread": "old: chi-square SD interval",
          "old_bootstrap_seed_std": "old: bootstrap of mean seed std"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=4000, help="simulated experiments per cell")
    reps = parser.parse_args().reps
    header = "| method | collapsed seeds | n | " + " | ".join(sim.DISTS) + " |"
    print(f"Coverage / size of a 95 % interval / 0.05 test, {reps} experiments per cell; * below 0.93 or above 0.06.\n")
    print(header)
    print("|" + "---|" * (3 + len(sim.DISTS)))
    for method in sim.METHODS:
        for collapse_p in sim.COLLAPSE_RATES if method in sim.NEW_METHODS else sim.COLLAPSE_RATES[:1]:
            for n in sim.ALL_NS:
                cells = [sim.run_cell(method, d, n, reps, collapse_p) for d in sim.DISTS]
                print(row(method, collapse_p, n, cells), flush=True)


def row(method: str, collapse_p: float, n: int, cells: list[sim.Cell]) -> str:
    text = []
    for c in cells:
        if c.coverage != c.coverage:  # nan: below the method's minimum n
            text.append("n/a")
            continue
        cov = f"{c.coverage:.3f}" + ("*" if c.coverage < sim.COVERAGE_MIN else "")
        size = "" if c.size is None else f" / {c.size:.3f}" + ("*" if c.size > sim.SIZE_MAX else "")
        text.append(cov + size)
    return f"| {LABELS[method]} | {collapse_p:.0%} | {n} | " + " | ".join(text) + " |"


if __name__ == "__main__":
    main()
