"""Pure parts of finetuning: metrics, LR schedule, early stopping, batching, weight-decay groups."""
from __future__ import annotations

import math

import numpy as np
import pytest

from basefuse.finetuning.config import FinetuneConfig
from basefuse.finetuning.loop import (EarlyStopping, length_grouped_batches, linear_warmup_decay, param_groups,
                                    schedule_lengths)
from basefuse.finetuning.metrics import accuracy, classification_metrics, macro_f1


def test_accuracy_hand_computed():
    assert accuracy([0, 1, 1, 2], [0, 1, 2, 2]) == 0.75
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        accuracy([0, 1], [0])


def test_macro_f1_hand_computed():
    # class 0: tp=1 fp=0 fn=1 -> F1 2/3; class 1: tp=2 fp=1 fn=1 -> 4/6; class 2 (only predicted): 0
    preds, labels = [0, 1, 1, 1, 2], [0, 0, 1, 1, 1]
    assert macro_f1(preds, labels) == pytest.approx((2 / 3 + 4 / 6 + 0) / 3)
    assert macro_f1([1, 1, 1], [1, 1, 1]) == 1.0
    assert macro_f1([0, 0, 0, 0], [0, 0, 1, 1]) == pytest.approx((2 / 3 + 0) / 2)


def test_classification_metrics_reports_n():
    m = classification_metrics([1, 0], [1, 1])
    assert m == {"accuracy": 0.5, "macro_f1": pytest.approx((2 / 3) / 2), "n": 2}


def test_linear_warmup_decay_shape():
    total, warm = 100, 10
    assert linear_warmup_decay(0, total, warm) == 0.0
    assert linear_warmup_decay(5, total, warm) == 0.5
    assert linear_warmup_decay(10, total, warm) == 1.0
    assert linear_warmup_decay(55, total, warm) == pytest.approx(0.5)
    assert linear_warmup_decay(100, total, warm) == 0.0
    assert linear_warmup_decay(0, total, 0) == 1.0


def test_schedule_matches_transformers():
    import torch
    from transformers import get_linear_schedule_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_linear_schedule_with_warmup(opt, 7, 50)
    for step in range(50):
        assert opt.param_groups[0]["lr"] == pytest.approx(linear_warmup_decay(step, 50, 7))
        opt.step()
        sched.step()


def test_schedule_lengths_fractional_epochs():
    cfg = FinetuneConfig(batch_size=32, max_epochs=1.5, warmup_ratio=0.1, min_steps=0)
    per_epoch, total, warm = schedule_lengths(100, cfg)
    assert (per_epoch, total, warm) == (4, 6, 1)


def test_early_stopping_patience_and_min_delta():
    es = EarlyStopping(patience=2, min_delta=0.01)
    assert es.update(0.50, 10) is True
    assert es.update(0.505, 20) is False  # gain below min_delta does not count
    assert not es.should_stop
    assert es.update(0.52, 30) is True  # a real gain resets the counter
    assert (es.best, es.best_step, es.bad_evals) == (0.52, 30, 0)
    assert es.update(0.40, 40) is False
    assert es.update(0.52, 50) is False
    assert es.should_stop and es.best_step == 30


def test_early_stopping_first_eval_is_best_even_at_zero():
    es = EarlyStopping(patience=1)
    assert es.update(0.0, 5) and es.best_step == 5


def test_length_grouped_batches_cover_once_and_are_seeded():
    lengths = np.random.default_rng(1).integers(1, 60, 1000)
    a = length_grouped_batches(lengths, 16, np.random.default_rng(3), group=4)
    b = length_grouped_batches(lengths, 16, np.random.default_rng(3), group=4)
    c = length_grouped_batches(lengths, 16, np.random.default_rng(4), group=4)
    flat = np.concatenate(a)
    assert sorted(flat.tolist()) == list(range(1000))
    assert all(len(x) <= 16 for x in a) and sum(len(x) == 16 for x in a) >= len(a) - math.ceil(1000 / 64)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    # grouping pays: padding waste far below that of random batches
    waste = sum(int(lengths[x].max()) * len(x) - int(lengths[x].sum()) for x in a)
    rnd = np.random.default_rng(3).permutation(1000)
    rwaste = sum(int(lengths[x].max()) * len(x) - int(lengths[x].sum())
                 for x in (rnd[i:i + 16] for i in range(0, 1000, 16)))
    assert waste < rwaste / 3


def test_param_groups_exclude_bias_and_layernorm():
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    decay, no_decay = param_groups(net, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert [tuple(p.shape) for p in decay["params"]] == [(3, 4)]
    assert len(no_decay["params"]) == 3  # linear bias, LayerNorm weight and bias
