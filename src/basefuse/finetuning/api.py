"""`finetune()`: load a base and a task, run the loop, write metrics (and the model) atomically."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from basefuse.data.task import Task
from basefuse.errors import BasefuseError
from basefuse.finetuning.config import FinetuneConfig
from basefuse.io import atomic_output_dir, write_json

if TYPE_CHECKING:
    import torch



# ---------------------------------------------------------------- inputs

def resolve_device(device: str | None) -> "torch.device":
    """None/"auto" -> cuda when available, else cpu; anything else must be a torch device string."""
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise BasefuseError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BasefuseError(f"device {device} requested but CUDA is not available: use --device cpu or auto")
    return dev


def check_task(task: Task) -> None:
    """Refuse tasks the loop cannot learn from or score honestly (one line saying what to fix)."""
    name = task.name or "task"
    if task.num_labels < 2:
        raise BasefuseError(f"task {name}: needs at least 2 label names, got {task.label_names}")
    for split in ("train", "validation", "test"):
        ds = getattr(task, split)
        if ds is None or len(ds) == 0:
            raise BasefuseError(f"task {name}: the {split} split is empty; give more data or another split")
        for col in ("text", "label"):
            if col not in ds.column_names:
                raise BasefuseError(f"task {name}: {split} split has no column {col!r} "
                                    f"(columns: {', '.join(ds.column_names)})")
    import pyarrow as pa

    for split in ("train", "validation", "test"):
        ds = getattr(task, split)
        for col in ("text", "text_pair"):
            if col in ds.column_names and not pa.types.is_string(ds.features.arrow_schema.field(col).type) \
                    and not pa.types.is_large_string(ds.features.arrow_schema.field(col).type):
                raise BasefuseError(f"task {name}: column {col!r} of {split} must be text (strings), "
                                    f"found {ds.features[col]}")
        labels = set(ds.unique("label"))
        bad = sorted(x for x in labels if not isinstance(x, int) or not 0 <= x < task.num_labels)
        if bad:
            raise BasefuseError(f"task {name}: {split} labels {bad[:5]} are not in range(0, {task.num_labels})")
    train_labels = set(task.train.unique("label"))
    if len(train_labels) < 2:
        raise BasefuseError(f"task {name}: train has a single class ({task.label_names[next(iter(train_labels))]}); "
                            f"a classifier needs at least 2")
    unseen = set(task.test.unique("label")) - train_labels
    if unseen:
        names = ", ".join(task.label_names[i] for i in sorted(unseen))
        raise BasefuseError(f"task {name}: test labels never seen in train ({names}); re-split the data")


def _subsample_train(task: Task, max_train: int) -> Task:
    """Apply `max_train` to a Task given as an object, with the loaders' stratified recipe."""
    if len(task.train) <= max_train:
        return task
    import dataclasses

    import numpy as np

    from basefuse.data.splits import subsample

    idx = subsample(np.asarray(task.train[:]["label"]), max_train, task.name)
    fp = task.fingerprint and hashlib.sha256(f"{task.fingerprint}|max_train={max_train}".encode()).hexdigest()
    return dataclasses.replace(task, train=task.train.select(sorted(int(i) for i in idx)), fingerprint=fp)


def task_fingerprint(task: Task) -> str:
    """The loader's fingerprint, or a content hash (texts, labels, label names) for hand-built tasks."""
    if task.fingerprint:
        return task.fingerprint
    h = hashlib.sha256()
    h.update(repr((task.name, list(task.label_names))).encode())
    for split in ("train", "validation", "test"):
        cols = getattr(task, split)[:]
        h.update(split.encode())
        for key in ("text", "text_pair", "label"):
            if key in cols:
                h.update(repr(list(cols[key])).encode())
    return h.hexdigest()


def base_fingerprint(path_or_id: str, commit_hash: str | None = None) -> str:
    """sha256 over the weight files a model is read from (`checkpoints.ref.weights_fingerprint`; a hub id is
    resolved to its snapshot first). `commit_hash`: unused, kept for callers of the old signature."""
    from basefuse.checkpoints.ref import resolve_ref, weights_fingerprint

    p = Path(path_or_id)
    return weights_fingerprint(p) if p.is_dir() else resolve_ref(str(path_or_id)).fingerprint()


# ---------------------------------------------------------------- loading

class _DropLoadReport(logging.Filter):
    """Drop transformers' load report: we inspect the loading info ourselves and warn only on surprises."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


@contextlib.contextmanager
def _quiet_loading(progress: bool) -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    logger = logging.getLogger("transformers.modeling_utils")
    filt = _DropLoadReport()
    logger.addFilter(filt)
    bars_were_on = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        logger.removeFilter(filt)
        if bars_were_on and not progress:
            hf_logging.enable_progress_bar()


def _fresh_head(model: Any) -> None:
    """Re-initialise everything outside the body: a source model's head is never carried into a target,
    even when its shape fits (its classes mean something else; intertraining starts the target with a new head).

    Done by hand because transformers' own `_init_weights` skips parameters that were loaded.
    """
    import torch

    std = getattr(model.config, "initializer_range", 0.02)
    body = model.base_model
    for child in model.children():
        if child is body:
            continue
        for module in child.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, 0.0, std)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif hasattr(module, "reset_parameters"):
                module.reset_parameters()


def load_model_and_tokenizer(path: str, label_names: list[str], *, progress: bool) -> tuple[Any, Any]:
    """AutoTokenizer + AutoModelForSequenceClassification with a fresh k-way head, its weights in float32.

    A checkpoint with another head (an intertrained source model) loads too: its head is re-initialised.
    Body weights missing from the checkpoint are a real problem, so those still warn.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BasefuseError(f"cannot load a tokenizer from {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                            f"; give a model folder with tokenizer files, a built-in model or a hub id") from e
    try:
        with _quiet_loading(progress):
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path, id2label=dict(enumerate(label_names)),
                label2id={n: i for i, n in enumerate(label_names)}, ignore_mismatched_sizes=True,
                output_loading_info=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BasefuseError(f"cannot load a sequence-classification model from {path}: {first}") from e
    # Weights in float32 whatever the checkpoint stores (transformers 5 keeps a bf16 file's dtype, e.g. a base
    # fused with --dtype bfloat16): bf16 is only ever autocast, on a GPU that supports it.
    model.float()
    _fresh_head(model)
    prefix = getattr(model, "base_model_prefix", "") + "."
    body_missing = sorted(key for key in info.get("missing_keys", ())
                          if key.startswith(prefix) and ".pooler." not in key)
    if body_missing:
        warnings.warn(f"{path}: {len(body_missing)} body weights missing from the checkpoint and randomly "
                      f"initialised (first: {body_missing[0]})", stacklevel=3)
    if tokenizer.pad_token_id is None:  # GPT-style tokenizers: pad with EOS, as is usual for classification
        if tokenizer.eos_token is None:
            raise BasefuseError(f"tokenizer of {path} has neither a pad nor an eos token; add a pad token")
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


# ---------------------------------------------------------------- the API

@contextlib.contextmanager
def _torch_threads(device: "torch.device", threads: int | None) -> Iterator[None]:
    """Use `threads` (default: every core) on CPU for this call only (executors that run several finetunes
    at once pass each its share); restore the caller's setting afterwards."""
    import torch

    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _capped(split: Any, cap: int | None) -> Any:
    """A fixed random subset (seed 0) of at most `cap` examples: the same subset for every base and seed."""
    if cap is None or len(split) <= cap:
        return split
    return split.shuffle(seed=0).select(range(cap))


def finetune(model: str, task: Task | str, *, config: FinetuneConfig | None = None, seed: int = 0,
             out: str | Path | None = None, save: bool = False, device: str | None = None,
             progress: bool = True, force: bool = False, threads: int | None = None,
             repo_id: str | None = None) -> dict:
    """Finetune `model` on `task` with one seed; return (and write to `out/metrics.json`) the metrics.

    `threads`: CPU threads for torch on CPU (default: every core).

    Same seed, same machine, CPU -> same metrics. With `save`, `out/model/` holds the finetuned model
    in safetensors + its tokenizer, loadable with `AutoModelForSequenceClassification.from_pretrained`, and a
    model card (README.md); `repo_id`: the Hub repo it will be pushed to (named in the card's usage example).
    """
    import torch

    from basefuse.finetuning.loop import encode, train
    from basefuse.models import resolve_model

    config = config or FinetuneConfig()
    if save and out is None:
        raise BasefuseError("save=True needs an output folder: pass out=... (--out on the command line)")
    t0 = time.perf_counter()
    model_path = resolve_model(str(model))
    protected = [Path(model_path)] if Path(model_path).exists() else []
    if isinstance(task, str):
        from basefuse.data.api import load_task

        if Path(task).exists():
            protected.append(Path(task))
        task = load_task(task, max_train=config.max_train)
    elif config.max_train is not None:
        task = _subsample_train(task, config.max_train)
    check_task(task)
    dev = resolve_device(device)

    out_ctx = atomic_output_dir(out, force=force, protected=protected) if out is not None \
        else contextlib.nullcontext(None)
    with out_ctx as tmp, _torch_threads(dev, threads):
        cuda_devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devices):  # leave the caller's RNG state as it was
            torch.manual_seed(seed)
            net, tokenizer = load_model_and_tokenizer(model_path, list(task.label_names), progress=progress)
            validation = _capped(task.validation, config.max_eval)
            test = _capped(task.test, config.max_test)
            encs = [encode(tokenizer, ds, config.max_length) for ds in (task.train, validation, test)]
            with _progress_bar(progress, task.name) as on_step:
                result = train(net, *encs, config, seed=seed, device=dev, on_step=on_step)
        metrics = _metrics_dict(model=str(model), model_path=model_path, task=task, config=config, seed=seed,
                                device=dev, result=result, wall=time.perf_counter() - t0,
                                commit_hash=getattr(net.config, "_commit_hash", None))
        if tmp is not None:
            if save:
                from basefuse.finetuning.card import write_card

                _save_model(net, tokenizer, tmp / "model", out, progress)
            metrics["wall_time_s"] = round(time.perf_counter() - t0, 3)
            if save:
                write_card(tmp / "model", metrics, model_path, repo_id)
            write_json(tmp / "metrics.json", metrics)
        del net
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return metrics


def _save_model(net: Any, tokenizer: Any, folder: Path, out: str | Path, progress: bool) -> None:
    """save_pretrained, with a full disk as one line: safetensors reports ENOSPC as SafetensorError."""
    from safetensors import SafetensorError

    try:
        with _quiet_loading(progress):
            net.to("cpu").save_pretrained(folder)
            tokenizer.save_pretrained(folder)
    except (OSError, SafetensorError) as e:
        why = getattr(e, "strerror", None) or (str(e).splitlines() or [type(e).__name__])[0]
        raise BasefuseError(f"cannot write the finetuned model to {out}: {why[:200]}; free disk space or "
                            "choose another --out (nothing was written)") from None


@contextlib.contextmanager
def _progress_bar(progress: bool, name: str) -> Iterator[Any]:
    if not progress:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=None, desc=f"finetune {name}", unit="step", dynamic_ncols=True, leave=True)

    def on_step(step: int, total: int, loss: float | None, val_acc: float | None) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(step - bar.n)
        post = {}
        if loss is not None:
            post["loss"] = f"{loss:.4f}"
        if val_acc is not None:
            post["val_acc"] = f"{val_acc:.4f}"
        if step % 5 == 0 or step == total:
            bar.set_postfix(post, refresh=False)

    try:
        yield on_step
    finally:
        bar.close()


def _metrics_dict(*, model: str, model_path: str, task: Task, config: FinetuneConfig, seed: int,
                  device: "torch.device", result: Any, wall: float, commit_hash: str | None) -> dict:
    import torch
    import transformers

    return {
        "task": task.name,
        "model": model,
        "seed": seed,
        "accuracy": result.test["accuracy"],
        "macro_f1": result.test["macro_f1"],
        "test": result.test,
        "validation": result.validation,
        "n": {"train": len(task.train), "validation": result.validation.get("n"),
              "test": result.test["n"]},
        "steps": result.steps,
        "eval_every": result.eval_every,
        "precision": result.precision,
        "best_step": result.best_step,
        "stopped_early": result.stopped_early,
        "wall_time_s": round(wall, 3),
        "train_seconds": round(result.train_seconds, 3),
        "train_samples_per_s": round(result.train_samples_per_s, 2),
        "train_cpu_seconds": round(result.train_cpu_seconds, 3),
        "hyperparameters": config.model_dump(mode="json"),
        "base_fingerprint": base_fingerprint(model_path, commit_hash),
        "task_fingerprint": task_fingerprint(task),
        "task_source": task.source,  # where the data came from: a base made from this finetune is checked against it
        "label_names": list(task.label_names),
        "family": task.family,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "history": result.history,
    }
