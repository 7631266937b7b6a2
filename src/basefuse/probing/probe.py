"""`linear_probe()`: a frozen base's features, a logistic regression per C, the best C on validation, one test.

The record (out/metrics.json) has finetuning's format (`basefuse.finetuning.api._metrics_dict`'s keys) plus
"evaluation": "linear_probe", the chosen C and the validation curve, so a report reads either kind alike.

What the seed does: with a train budget (`max_train` smaller than the train split) the seed draws the probe's
training examples, a stratified subsample of that size from the whole train split (seed k: the draw seeded by
sha256(task name, "probe_train", k); every seed, 0 included, differs from the loaders' fixed `max_train` recipe,
so the seeds are exchangeable draws). Without a budget the probe is deterministic (lbfgs from zero, no shuffling):
the seed changes nothing, and the record says so in "seed_effect".
"""
from __future__ import annotations

import contextlib
import dataclasses
import platform
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from basefuse.data.task import Task
from basefuse.errors import BasefuseError
from basefuse.io import atomic_output_dir, write_json
from basefuse.probing.config import ProbeConfig

if TYPE_CHECKING:
    import torch

DRAW_RECIPE = "stratified draw of max_train from the whole train split; seed=sha256(task|probe_train|seed)"


@dataclasses.dataclass(frozen=True)
class ProbeTask:
    """A task whose whole train split is the pool the seed draws from, with the fingerprint of the task at its
    budget as the loaders make it (what finetuning records and an experiment plans with)."""

    pool: Task
    fingerprint: str


def probe_task(spec: str, max_train: int | None, *, text_col: str = "text", label_col: str = "label",
               pair_col: str | None = None, family: str | None = None) -> ProbeTask:
    """Load a task twice (from the normalised-data cache after the first time): whole, and at the budget."""
    from basefuse.data.api import load_task

    kw: dict[str, Any] = dict(text_col=text_col, label_col=label_col, pair_col=pair_col, family=family)
    pool = load_task(spec, max_train=None, **kw)
    budgeted = pool if max_train is None else load_task(spec, max_train=max_train, **kw)
    return ProbeTask(pool=pool, fingerprint=budgeted.fingerprint)


def _as_probe_task(task: Task | ProbeTask | str, max_train: int | None) -> ProbeTask:
    from basefuse.finetuning.api import _subsample_train, task_fingerprint

    if isinstance(task, ProbeTask):
        return task
    if isinstance(task, str):
        return probe_task(task, max_train)
    budgeted = task if max_train is None else _subsample_train(task, max_train)
    return ProbeTask(pool=task, fingerprint=task_fingerprint(budgeted))


def train_draw(labels: np.ndarray, max_train: int | None, task_name: str, seed: int) -> np.ndarray | None:
    """Indices (sorted) of the seed's training examples, or None when the whole train split is used."""
    from basefuse.data.splits import stable_seed, stratified_draw

    if max_train is None or max_train >= len(labels):
        return None
    _, drawn = stratified_draw(labels, max_train, stable_seed(task_name, "probe_train", str(seed)), take_min=1)
    return drawn


def capped_rows(n: int, cap: int | None) -> np.ndarray:
    """The rows finetuning's `_capped` scores (datasets' shuffle(seed=0), first `cap`), as indices."""
    if cap is None or n <= cap:
        return np.arange(n)
    from datasets import Dataset

    from basefuse.finetuning.api import _capped

    return np.asarray(_capped(Dataset.from_dict({"row": list(range(n))}), cap)["row"], dtype=np.int64)


def choose_c(curve: list[dict[str, float]]) -> int:
    """Index of the best validation accuracy; ties go to the smaller C (the stronger regularisation)."""
    best = 0
    for i, point in enumerate(curve):
        if point["accuracy"] > curve[best]["accuracy"] or (
                point["accuracy"] == curve[best]["accuracy"] and point["C"] < curve[best]["C"]):
            best = i
    return best


def fit_and_select(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                   config: ProbeConfig) -> tuple[Any, Any, list[dict[str, Any]], int]:
    """StandardScaler fit on train only; one L2 logistic regression (lbfgs) per C; the best C on validation.

    Returns (scaler, the chosen C's model, the validation curve, the chosen index).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from basefuse.finetuning.metrics import classification_metrics

    scaler = StandardScaler().fit(x_train)
    xt, xv = scaler.transform(x_train), scaler.transform(x_val)
    curve, models = [], []
    for c in config.c_grid:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf = LogisticRegression(C=c, max_iter=config.max_iter).fit(xt, y_train)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        m = classification_metrics(clf.predict(xv).tolist(), y_val.tolist())
        curve.append({"C": c, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "converged": converged})
        models.append(clf)
    best = choose_c(curve)
    return scaler, models[best], curve, best


def linear_probe(model: str, task: Task | ProbeTask | str, *, config: ProbeConfig | None = None, seed: int = 0,
                 max_train: int | None = None, out: str | Path | None = None, device: str | None = None,
                 threads: int | None = None, force: bool = False) -> dict:
    """Linear-probe `model` on `task` with one seed; return (and write to `out/metrics.json`) the metrics.

    `max_train`: the probe trains on a stratified draw of this many train examples, drawn with `seed` from the
    whole train split (see the module docstring); features of the whole split are extracted once and cached, so
    other seeds, budgets and C grids cost no forward pass.
    """
    from basefuse.finetuning.api import (_torch_threads, base_fingerprint, check_task, resolve_device,
                                         task_fingerprint)
    from basefuse.finetuning.metrics import classification_metrics
    from basefuse.models import resolve_model
    from basefuse.probing.features import split_features

    config = config or ProbeConfig()
    if max_train is not None and max_train < 2:
        raise BasefuseError(f"max_train={max_train} is too small: give at least 2 (or none for all of train)")
    if seed < 0:
        raise BasefuseError(f"seed={seed}: must be >= 0")
    t0, c0 = time.perf_counter(), time.process_time()
    model_path = resolve_model(str(model))
    protected = [Path(model_path)] if Path(model_path).exists() else []
    if isinstance(task, str) and Path(task).exists():
        protected.append(Path(task))
    pt = _as_probe_task(task, max_train)
    full = pt.pool
    check_task(full)
    dev = resolve_device(device)
    base_fp = base_fingerprint(model_path)
    pool_fp = task_fingerprint(full)

    y_train_all = np.asarray(full.train["label"], dtype=np.int64)
    draw = train_draw(y_train_all, max_train, full.name, seed)
    val_rows = capped_rows(len(full.validation), config.max_eval)
    test_rows = capped_rows(len(full.test), config.max_test)

    out_ctx = atomic_output_dir(out, force=force, protected=protected) if out is not None \
        else contextlib.nullcontext(None)
    with out_ctx as tmp, _torch_threads(dev, threads):
        import torch

        train_rows = draw if draw is not None else np.arange(len(y_train_all))
        feats, hits = split_features(model_path, base_fp, pool_fp,
                                     {"train": full.train, "validation": full.validation, "test": full.test},
                                     max_length=config.max_length, pooling=config.pooling,
                                     batch_size=config.batch_size, device=dev,
                                     rows={"train": train_rows, "validation": val_rows, "test": test_rows})
        t_feat = time.perf_counter() - t0
        x_train, y_train = feats["train"], y_train_all[train_rows]
        y_val = np.asarray(full.validation["label"], dtype=np.int64)[val_rows]
        y_test = np.asarray(full.test["label"], dtype=np.int64)[test_rows]
        scaler, clf, curve, best = fit_and_select(x_train, y_train, feats["validation"], y_val, config)
        test = classification_metrics(clf.predict(scaler.transform(feats["test"])).tolist(), y_test.tolist())
        validation = {k: curve[best][k] for k in ("accuracy", "macro_f1")} | {"n": len(val_rows)}
        metrics = _record(model=str(model), task=full, fingerprint=pt.fingerprint, pool_fp=pool_fp,
                          base_fp=base_fp, config=config, seed=seed, max_train=max_train, draw=draw,
                          n_train=len(train_rows), validation=validation, test=test, curve=curve, best=best,
                          hits=hits, device=dev, threads=torch.get_num_threads())
        metrics["feature_seconds"] = round(t_feat, 3)
        metrics["wall_time_s"] = round(time.perf_counter() - t0, 3)
        metrics["cpu_seconds"] = round(time.process_time() - c0, 3)
        if tmp is not None:
            write_json(tmp / "metrics.json", metrics)
    return metrics


def _record(*, model: str, task: Task, fingerprint: str, pool_fp: str, base_fp: str, config: ProbeConfig,
            seed: int, max_train: int | None, draw: np.ndarray | None, n_train: int, validation: dict,
            test: dict, curve: list[dict], best: int, hits: dict[str, bool], device: "torch.device",
            threads: int) -> dict:
    import hashlib

    import sklearn
    import torch
    import transformers

    if draw is None:
        seed_effect = "none: the whole train split is used and the probe is deterministic"
        draw_info = None
    else:
        seed_effect = "draws the training examples"
        draw_info = {"recipe": DRAW_RECIPE, "n": int(len(draw)), "from": len(task.train),
                     "rows_sha256": hashlib.sha256(np.asarray(draw, dtype=np.int64).tobytes()).hexdigest()}
    return {
        "task": task.name,
        "model": model,
        "seed": seed,
        "evaluation": "linear_probe",
        "accuracy": test["accuracy"],
        "macro_f1": test["macro_f1"],
        "test": test,
        "validation": validation,
        "n": {"train": n_train, "validation": validation["n"], "test": test["n"]},
        "chosen_c": curve[best]["C"],
        "c_rule": "highest validation accuracy; ties -> the smaller C",
        "validation_curve": curve,
        "seed_effect": seed_effect,
        "train_draw": draw_info,
        "feature_cache_hits": hits,
        "wall_time_s": 0.0,  # set by the caller once everything is done
        "hyperparameters": config.model_dump(mode="json") | {"max_train": max_train},
        "base_fingerprint": base_fp,
        "task_fingerprint": fingerprint,  # the task at its budget, as finetuning records it
        "train_pool_fingerprint": pool_fp,  # the whole train split the seed draws from
        "task_source": task.source,
        "label_names": list(task.label_names),
        "family": task.family,
        "device": str(device),
        "threads": threads,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "scikit-learn": sklearn.__version__, "python": platform.python_version()},
    }
