"""A tiny experiment: two families of three learnable keyword tasks on a tiny random BERT."""
from __future__ import annotations

from pathlib import Path

from test_finetune_fixtures import keyword_rows, make_tiny_bert, write_csv

HPARAMS = {"learning_rate": 3e-3, "batch_size": 16, "max_epochs": 8, "max_length": 16, "eval_every": 10,
           "patience": 5}


def make_tiny_experiment(root: Path, **overrides) -> dict:
    """A config dict whose tasks are CSV files (same keyword rule, different samples) and whose base is local."""
    base = make_tiny_bert(root / "base")
    (root / "data").mkdir(parents=True, exist_ok=True)
    families = {}
    for f, fam in enumerate(("x", "y")):
        families[fam] = []
        for i in range(1, 4):
            name = f"{fam}{i}"
            path = write_csv(root / "data" / f"{name}.csv", keyword_rows(240, seed=10 * f + i))
            families[fam].append({"name": name, "spec": str(path)})
    cfg = {"name": "tiny", "base_model": str(base), "families": families, "targets": ["x1"], "seeds": [0, 1],
           "source_finetune": HPARAMS, "finetune": HPARAMS,
           "leakage": {"max_test_overlap": 0.1}}  # short keyword texts collide by chance: x1 shares 2 of 24
    return cfg | overrides
