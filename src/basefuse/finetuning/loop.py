"""A lean training loop: tokenise once, length-grouped dynamic batches, early stopping on validation.

Kept separate from loading and I/O (api.py) so the maths (schedule, early stopping, batching)
stays pure and testable, and the loop itself only moves tensors.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from basefuse.errors import BasefuseError, TrainingDiverged
from basefuse.finetuning.config import FinetuneConfig
from basefuse.finetuning.metrics import classification_metrics

if TYPE_CHECKING:
    import torch
    from datasets import Dataset


# ---------------------------------------------------------------- pure parts

def linear_warmup_decay(step: int, total: int, warmup: int) -> float:
    """LR multiplier at `step`: ramp 0 -> 1 over `warmup` steps, then decay linearly to 0 at `total`.

    Same formula as transformers' `get_linear_schedule_with_warmup`, so results compare with Trainer.
    """
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def schedule_lengths(n_train: int, config: FinetuneConfig) -> tuple[int, int, int]:
    """(optimiser steps per epoch, total optimiser steps, warm-up steps) for a train set of `n_train` examples.

    The run lasts `max_epochs` epochs but at least `min_steps` steps: with 300 examples, 3 epochs are only
    30 steps, too few to train a new head and adapt the body (issue 10); early stopping ends long runs.
    """
    passes = max(1, math.ceil(n_train / config.batch_size))
    per_epoch = max(1, math.ceil(passes / config.grad_accum))
    total = max(1, math.ceil(config.max_epochs * per_epoch), config.min_steps)
    return per_epoch, total, math.ceil(config.warmup_ratio * total)


def first_non_finite(losses: list[float], first_step: int) -> int | None:
    """The step number of the first NaN/Inf loss in `losses` (steps numbered from `first_step`), or None."""
    for k, value in enumerate(losses):
        if not math.isfinite(value):
            return first_step + k
    return None


@dataclass
class EarlyStopping:
    """Track the best validation score; stop after `patience` evaluations without a `min_delta` gain."""

    patience: int
    min_delta: float = 0.0
    best: float = -math.inf
    best_step: int = -1
    bad_evals: int = 0

    def update(self, score: float, step: int) -> bool:
        """Record one evaluation; True when it is a new best (the caller then keeps the weights)."""
        if score > self.best + self.min_delta or self.best_step < 0:
            self.best, self.best_step, self.bad_evals = score, step, 0
            return True
        self.bad_evals += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_evals >= self.patience


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                           group: int = 50) -> list[np.ndarray]:
    """Shuffle, then sort by length inside mega-batches of `group` batches, then shuffle the batches.

    Batches hold examples of similar length, so dynamic padding wastes little compute, while the
    order stays random enough for SGD. All randomness comes from `rng` (seeded by the caller).
    """
    lengths = np.asarray(lengths)
    perm = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    mega = batch_size * group
    for start in range(0, len(perm), mega):
        chunk = perm[start:start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size))
    return [batches[k] for k in rng.permutation(len(batches))]


# ---------------------------------------------------------------- tensors

@dataclass
class Encoded:
    """A split tokenised once: right-padded id matrices plus true lengths, sliced per batch."""

    features: dict[str, np.ndarray]  # input_ids and optional token_type_ids, shape (n, max_len)
    lengths: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


# Texts are cut to this many characters per token of max_length before tokenizing: a tokenizer truncates only
# after it has tokenized the whole text, so one multi-megabyte cell would take minutes and gigabytes. A token
# is rarely more than a few characters (a word-piece vocabulary gives up on words over 100), so the first
# max_length tokens come from far fewer characters than this.
CHARS_PER_TOKEN = 64


def clip_texts(texts: list[str], max_length: int) -> list[str]:
    """Each text cut to CHARS_PER_TOKEN * max_length characters (the tokens kept by truncation are unchanged)."""
    limit = CHARS_PER_TOKEN * max_length
    return [t if len(t) <= limit else t[:limit] for t in texts]


def encode(tokenizer: Any, ds: "Dataset", max_length: int) -> Encoded:
    """Tokenise a split in one call to the fast tokenizer (no padding: batches pad themselves)."""
    cols = ds[:]
    pairs = cols.get("text_pair")
    enc = tokenizer(clip_texts(list(cols["text"]), max_length),
                    clip_texts(list(pairs), max_length) if pairs is not None else None, truncation=True,
                    max_length=max_length, padding=False)
    ids = enc["input_ids"]
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    if len(ids) and not lengths.any():
        raise BasefuseError(f"the model's tokenizer ({type(tokenizer).__name__}) turns every text into no token "
                            f"ids (e.g. {str(cols['text'][0])[:40]!r}): use a model whose tokenizer covers "
                            "these texts (and adds its special tokens)")
    width = int(lengths.max()) if len(ids) else 1
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    features: dict[str, np.ndarray] = {}
    for key in ("input_ids", "token_type_ids"):
        if key not in enc:
            continue
        mat = np.full((len(ids), width), pad_id if key == "input_ids" else 0, dtype=np.int64)
        for r, row in enumerate(enc[key]):
            mat[r, :len(row)] = row
        features[key] = mat
    return Encoded(features, lengths, np.asarray(cols["label"], dtype=np.int64))


def make_batch(enc: Encoded, idx: np.ndarray, device: "torch.device") -> dict[str, "torch.Tensor"]:
    """Slice rows `idx`, cut to the longest of them, and build the attention mask."""
    import torch

    width = int(enc.lengths[idx].max())
    batch = {k: torch.from_numpy(np.ascontiguousarray(v[idx, :width])) for k, v in enc.features.items()}
    batch["attention_mask"] = torch.from_numpy(
        (np.arange(width)[None, :] < enc.lengths[idx][:, None]).astype(np.int64))
    if device.type == "cuda":  # pinned host memory lets the copy overlap with queued GPU work
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.to(device) for k, v in batch.items()}


def use_bf16(device: "torch.device", wanted: bool) -> bool:
    """bf16 autocast only on a CUDA device that supports it: on CPU it is slower and changes the numbers."""
    import torch

    return wanted and device.type == "cuda" and torch.cuda.is_bf16_supported()


def _autocast(device: "torch.device", bf16: bool) -> contextlib.AbstractContextManager:
    import torch

    if bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict(model: "torch.nn.Module", enc: Encoded, batch_size: int, device: "torch.device",
            bf16: bool = False) -> np.ndarray:
    """Argmax predictions in the split's order; batches sorted by length so padding is minimal."""
    import torch

    was_training = model.training
    model.eval()
    preds = np.empty(len(enc), dtype=np.int64)
    order = np.argsort(-enc.lengths, kind="stable")
    with torch.inference_mode(), _autocast(device, bf16):
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            logits = model(**make_batch(enc, idx, device)).logits
            preds[idx] = logits.argmax(-1).cpu().numpy()
    model.train(was_training)
    return preds


def evaluate(model: "torch.nn.Module", enc: Encoded, batch_size: int, device: "torch.device",
             bf16: bool = False) -> dict:
    return classification_metrics(predict(model, enc, batch_size, device, bf16), enc.labels)


def param_groups(model: "torch.nn.Module", weight_decay: float) -> list[dict]:
    """Decay matrices only: biases and LayerNorm gains (1-D tensors) are excluded, as is standard."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: "torch.nn.Module", config: FinetuneConfig) -> "torch.optim.Optimizer":
    """AdamW, fused into one kernel per step where torch supports it for these parameters (as Trainer does)."""
    import torch

    groups = param_groups(model, config.weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=config.learning_rate, fused=True)
    except (RuntimeError, TypeError):  # older torch, or a device without a fused kernel
        return torch.optim.AdamW(groups, lr=config.learning_rate)


# ---------------------------------------------------------------- the loop

@dataclass
class LoopResult:
    steps: int
    best_step: int
    stopped_early: bool
    validation: dict
    test: dict
    train_seconds: float
    train_samples: int
    train_cpu_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    eval_every: int = 0
    precision: str = "fp32"

    @property
    def train_samples_per_s(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else 0.0


StepCallback = Callable[[int, int, float | None, float | None], None]
"""on_step(step, total_steps, recent_loss, last_validation_accuracy)"""


def train(model: "torch.nn.Module", train_enc: Encoded, val_enc: Encoded, test_enc: Encoded,
          config: FinetuneConfig, *, seed: int, device: "torch.device",
          on_step: StepCallback | None = None) -> LoopResult:
    """Train with AdamW + linear warm-up/decay, early-stop on validation accuracy, restore the best, test once.

    One optimiser step = `grad_accum` forward/backward passes of `batch_size` examples, then the gradient is
    clipped to `max_grad_norm` (as the HF Trainer does). The loss is read on the host every 10 steps and at each
    validation (one sync, not one per step); a NaN/Inf loss raises `TrainingDiverged` naming its step.
    The caller seeds torch (the new head's init and dropout); `seed` here drives batch order only.
    """
    import torch
    import torch.nn.functional as F

    model.to(device)
    model.train()
    optimizer = make_optimizer(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    _, total, warmup = schedule_lengths(len(train_enc), config)
    eval_every = config.eval_interval(total)
    bf16 = use_bf16(device, config.bf16)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: linear_warmup_decay(s, total, warmup))
    rng = np.random.default_rng(seed)
    stopper = EarlyStopping(config.patience, config.min_delta)
    eval_bs = max(2 * config.batch_size, 64)
    best_state: dict[str, torch.Tensor] | None = None
    best_val: dict = {}
    history: list[dict] = []
    step, passes, samples, train_seconds = 0, 0, 0, 0.0
    last_acc: float | None = None
    recent_loss: float | None = None
    step_losses: list[torch.Tensor] = []  # one per optimiser step since the last host sync
    step_loss: torch.Tensor | None = None
    stopped_early = False
    seg_start, seg_cpu, train_cpu = time.perf_counter(), time.process_time(), 0.0

    while step < total and not stopped_early:
        for idx in length_grouped_batches(train_enc.lengths, config.batch_size, rng):
            batch = make_batch(train_enc, idx, device)
            labels = torch.from_numpy(train_enc.labels[idx]).to(device)
            with _autocast(device, bf16):
                logits = model(**batch).logits
            # mean over the step's passes, so the gradient's scale does not grow with grad_accum
            loss = F.cross_entropy(logits.float(), labels) / config.grad_accum
            loss.backward()
            samples += len(idx)
            step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
            passes += 1
            if passes % config.grad_accum:
                continue
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            step_losses.append(step_loss)
            step_loss = None
            at_eval = step % eval_every == 0 or step == total
            if at_eval or step % 10 == 0:
                values = torch.stack(step_losses).float().cpu().tolist()  # one host sync per 10 steps
                bad = first_non_finite(values, step - len(values) + 1)
                if bad is not None:
                    raise TrainingDiverged(f"training diverged: the loss is {values[bad - step + len(values) - 1]} "
                                           f"at optimiser step {bad} of {total} (learning rate "
                                           f"{config.learning_rate:g}); lower the learning rate")
                recent_loss = sum(values) / len(values)
                step_losses = []
            if at_eval:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                train_seconds += time.perf_counter() - seg_start
                train_cpu += time.process_time() - seg_cpu
                val = evaluate(model, val_enc, eval_bs, device, bf16)
                last_acc = val["accuracy"]
                history.append({"step": step, "loss": recent_loss, "val_accuracy": val["accuracy"],
                                "val_macro_f1": val["macro_f1"]})
                if stopper.update(val["accuracy"], step):
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    best_val = val
                stopped_early = stopper.should_stop and step < total
                seg_start, seg_cpu = time.perf_counter(), time.process_time()
            if on_step is not None:
                on_step(step, total, recent_loss, last_acc)
            if stopped_early or step >= total:
                break

    if best_state is not None:
        model.load_state_dict(best_state)
        del best_state
    test = evaluate(model, test_enc, eval_bs, device, bf16)
    return LoopResult(steps=step, best_step=stopper.best_step, stopped_early=stopped_early, validation=best_val,
                      test=test, train_seconds=train_seconds, train_samples=samples,
                      train_cpu_seconds=train_cpu, history=history, eval_every=eval_every,
                      precision="bf16" if bf16 else "fp32")
