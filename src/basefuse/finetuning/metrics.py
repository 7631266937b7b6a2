"""Classification metrics as pure functions (no sklearn dependency for two formulas)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_arrays(preds: Sequence[int], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(preds, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"preds and labels must be 1-D and the same length, got {p.shape} and {y.shape}")
    return p, y


def accuracy(preds: Sequence[int], labels: Sequence[int]) -> float:
    """Fraction of exact matches; 0.0 for empty input so callers never divide by zero."""
    p, y = _as_arrays(preds, labels)
    return float((p == y).mean()) if len(y) else 0.0


def macro_f1(preds: Sequence[int], labels: Sequence[int]) -> float:
    """Unweighted mean of per-class F1 over the classes seen in labels or predictions.

    Same class set as scikit-learn's default, so numbers compare with published ones;
    a class with no true positive scores 0.
    """
    p, y = _as_arrays(preds, labels)
    if not len(y):
        return 0.0
    classes = np.union1d(np.unique(y), np.unique(p))
    scores = []
    for c in classes:
        tp = int(np.sum((p == c) & (y == c)))
        fp = int(np.sum((p == c) & (y != c)))
        fn = int(np.sum((p != c) & (y == c)))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def classification_metrics(preds: Sequence[int], labels: Sequence[int]) -> dict[str, float | int]:
    """The numbers reported per split: accuracy, macro-F1 and the number of examples."""
    return {"accuracy": accuracy(preds, labels), "macro_f1": macro_f1(preds, labels), "n": len(labels)}
