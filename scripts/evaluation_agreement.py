"""Spearman's rank correlation between the finetune results of one run and the linear-probe results of another,
over the (base, target) cells both have, each cell the mean over seeds (main grid, weight decay 0): of accuracies,
and of gains over pretrained in the same target.

    python scripts/evaluation_agreement.py FINETUNE_RESULTS.jsonl PROBE_RESULTS.jsonl
"""
from __future__ import annotations

import sys

from basefuse.experiments.records import FINETUNE, LINEAR_PROBE, evaluation_of
from basefuse.reports.evaluations import agreement
from basefuse.reports.load import read_results


def main(finetune: str, probe: str) -> None:
    a, _ = read_results(finetune)
    b, _ = read_results(probe)
    a = [r for r in a if evaluation_of(r) == FINETUNE]
    b = [r for r in b if evaluation_of(r) == LINEAR_PROBE]
    ag = agreement(a + b, 0.0)
    fmt = lambda r: "n/a" if r is None else f"{r:+.3f}"  # noqa: E731
    print(f"Spearman rho of accuracies {fmt(ag.rho)} over n = {ag.n} (base, target) cells; of gains over pretrained "
          f"{fmt(ag.rho_gain)} over n = {ag.n_gain} cells (finetune: {finetune}; probe: {probe})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
