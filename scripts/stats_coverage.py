"""Print the coverage and size table of docs/statistics.md (every method, distribution and n of
tests/stats_simulation.py). Usage: .venv/bin/python scripts/stats_coverage.py [--reps 4000]  (about 2 minutes)."""
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
    header = "| method | n | " + " | ".join(sim.DISTS) + " |"
    print(f"Coverage / size of a 95 % interval / 0.05 test, {reps} experiments per cell; * below 0.93 or above 0.06.\n")
    print(header)
    print("|" + "---|" * (2 + len(sim.DISTS)))
    for method in sim.METHODS:
        for n in sim.ALL_NS:
            cells = [sim.run_cell(method, d, n, reps) for d in sim.DISTS]
            text = []
            for c in cells:
                if c.coverage != c.coverage:  # nan: below the method's minimum n
                    text.append("n/a")
                    continue
                cov = f"{c.coverage:.3f}" + ("*" if c.coverage < sim.COVERAGE_MIN else "")
                size = "" if c.size is None else f" / {c.size:.3f}" + ("*" if c.size > sim.SIZE_MAX else "")
                text.append(cov + size)
            print(f"| {LABELS[method]} | {n} | " + " | ".join(text) + " |", flush=True)


if __name__ == "__main__":
    main()
