"""Issue 10 items 1-2 for the loop: training length adapts to the data, gradient clipping, accumulation, bf16 rule.

Expected numbers are worked by hand from the rule in FinetuneConfig's docstring, never read back from the code.
"""
from __future__ import annotations

import math

import pytest
from pydantic import ValidationError
from builders import make_task, save_base as make_tiny_bert

from basefuse.finetuning.config import FinetuneConfig
from basefuse.finetuning.loop import first_non_finite, schedule_lengths, use_bf16

TINY = {"learning_rate": 3e-3, "batch_size": 16, "max_length": 16}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="module")
def task():
    return make_task(n_train=40, n_eval=30)


# ---------------------------------------------------------------- the rule, by hand

def test_small_train_set_runs_at_least_min_steps():
    # 300 examples / 32 = 10 steps an epoch; 3 epochs = 30 steps < 100, so 100; warm-up ceil(0.06 * 100) = 6
    assert schedule_lengths(300, FinetuneConfig(max_epochs=3, min_steps=100)) == (10, 100, 6)
    # 4,000 examples: 125 steps an epoch, 3 epochs = 375 > 100, so epochs decide; warm-up ceil(22.5) = 23
    assert schedule_lengths(4000, FinetuneConfig(max_epochs=3, min_steps=100)) == (125, 375, 23)
    # min_steps 0: epochs alone, as before issue 10
    assert schedule_lengths(300, FinetuneConfig(max_epochs=3, min_steps=0)) == (10, 30, 2)


def test_grad_accum_counts_optimiser_steps_not_passes():
    # 300 / 32 = 10 passes an epoch; 4 passes a step -> ceil(10 / 4) = 3 steps an epoch; 3 epochs = 9
    assert schedule_lengths(300, FinetuneConfig(max_epochs=3, min_steps=0, grad_accum=4)) == (3, 9, 1)


def test_eval_interval_splits_the_run_unless_set():
    assert FinetuneConfig().eval_interval(100) == 10
    assert FinetuneConfig().eval_interval(95) == math.ceil(95 / 10)
    assert FinetuneConfig(evals_per_run=4).eval_interval(100) == 25
    assert FinetuneConfig(eval_every=7).eval_interval(100) == 7
    assert FinetuneConfig().eval_interval(3) == 1


def test_first_non_finite_names_the_step():
    assert first_non_finite([0.7, 0.6, float("nan"), float("inf")], first_step=11) == 13
    assert first_non_finite([0.7, float("-inf")], first_step=1) == 2
    assert first_non_finite([0.7, 0.6], first_step=1) is None


@pytest.mark.parametrize("field", ["max_epochs", "learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm",
                                   "min_delta"])
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_epochs_inf_and_other_non_finite_hyperparameters_are_refused(field, value):
    with pytest.raises(ValidationError, match=field):
        FinetuneConfig(**{field: value})


def test_bf16_never_on_cpu():
    import torch

    assert use_bf16(torch.device("cpu"), True) is False


# ---------------------------------------------------------------- the loop on a tiny BERT

def test_min_steps_lengthens_a_run_and_evaluations_follow_its_length(tiny_bert, task):
    from basefuse.finetuning.api import finetune

    # 40 examples / 16 = 3 steps an epoch, 1 epoch -> 3 steps; min_steps 30 -> 30 steps, validated every 30/10 = 3
    cfg = FinetuneConfig(**TINY, max_epochs=1, min_steps=30, patience=100)
    m = finetune(str(tiny_bert), task, config=cfg, seed=0, progress=False)
    assert m["steps"] == 30 and m["eval_every"] == 3
    assert [h["step"] for h in m["history"]] == list(range(3, 31, 3))


def test_grad_accum_takes_one_optimiser_step_per_n_passes(tiny_bert, task):
    from torch.nn.modules.module import register_module_forward_pre_hook
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from basefuse.finetuning.api import finetune

    steps, passes = [], []
    handles = [register_optimizer_step_pre_hook(lambda opt, args, kwargs: steps.append(1)),
               register_module_forward_pre_hook(  # training forward passes of the whole classifier
                   lambda mod, args: passes.append(1) if mod.training and hasattr(mod, "classifier") else None)]
    try:
        # 40 / 8 = 5 passes an epoch, 2 a step -> ceil(5 / 2) = 3 steps an epoch; 2 epochs = 6 steps, 12 passes
        cfg = FinetuneConfig(**TINY | {"batch_size": 8}, grad_accum=2, max_epochs=2, min_steps=0, eval_every=100)
        m = finetune(str(tiny_bert), task, config=cfg, seed=0, progress=False)
    finally:
        for h in handles:
            h.remove()
    assert m["steps"] == 6 and len(steps) == 6 and len(passes) == 12


def _grad_norms_seen_by_optimizer(tiny_bert, task, max_grad_norm):
    """Global L2 norm of the gradient each time the optimiser is about to step."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from basefuse.finetuning.api import finetune

    norms = []

    def hook(opt, args, kwargs):
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads))))

    handle = register_optimizer_step_pre_hook(hook)
    try:
        cfg = FinetuneConfig(**TINY, max_epochs=2, min_steps=0, eval_every=100, max_grad_norm=max_grad_norm)
        finetune(str(tiny_bert), task, config=cfg, seed=0, progress=False)
    finally:
        handle.remove()
    return norms


def test_gradient_is_clipped_to_max_grad_norm(tiny_bert, task):
    unclipped = _grad_norms_seen_by_optimizer(tiny_bert, task, None)
    assert max(unclipped) > 0.05  # so the clipped run below has something to clip
    clipped = _grad_norms_seen_by_optimizer(tiny_bert, task, 0.05)
    assert len(clipped) == len(unclipped) and max(clipped) <= 0.05 * (1 + 1e-4)


def test_diverged_run_is_an_error_naming_the_step_and_writes_nothing(tiny_bert, task, tmp_path):
    from basefuse.errors import BasefuseError, TrainingDiverged
    from basefuse.finetuning.api import finetune

    cfg = FinetuneConfig(**TINY | {"learning_rate": 1e30}, min_steps=20)
    with pytest.raises(TrainingDiverged, match=r"at optimiser step \d+ of 20") as exc:
        finetune(str(tiny_bert), task, config=cfg, seed=0, out=tmp_path / "run", progress=False)
    assert isinstance(exc.value, BasefuseError)
    assert list(tmp_path.iterdir()) == []
