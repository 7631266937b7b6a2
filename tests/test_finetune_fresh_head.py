"""Issue 17, tests that miss bugs: a target finetune from a source model (intertraining) starts from the source's
body with a fresh head, never the source's classification head, even when that head has the target's shape (its
classes mean something else). The slow test of this trains a source first; here the source model is built
directly, with a head of marked values, and the training loop is wrapped to see the model it starts from."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from basefuse.finetuning import loop
from basefuse.finetuning.api import finetune
from basefuse.finetuning.config import FinetuneConfig
from builders import make_task, save_finetune

HEAD_WEIGHT, HEAD_BIAS = 7.0, 3.0  # far outside a fresh head: weights ~ N(0, 0.02), biases 0
CONFIG = FinetuneConfig(learning_rate=3e-3, batch_size=16, max_epochs=1, max_length=16, eval_every=2, patience=8,
                        min_steps=0)


@pytest.fixture(scope="module")
def source_model(tiny_bert, tmp_path_factory) -> Path:
    """A 2-class source finetune of the tiny BERT (body = base + noise) whose head holds marked values."""
    out = save_finetune(tmp_path_factory.mktemp("source") / "model", tiny_bert, num_labels=2, seed=1)
    path = out / "model.safetensors"
    tensors = load_file(str(path))
    tensors["classifier.weight"] = torch.full_like(tensors["classifier.weight"], HEAD_WEIGHT)
    tensors["classifier.bias"] = torch.full_like(tensors["classifier.bias"], HEAD_BIAS)
    save_file(tensors, str(path), metadata={"format": "pt"})
    for f in tiny_bert.iterdir():  # the tokenizer
        if not (out / f.name).exists():
            shutil.copy(f, out / f.name)
    return out


def test_target_finetune_starts_from_the_source_body_with_a_fresh_head(source_model, monkeypatch):
    start: dict[str, torch.Tensor] = {}
    real = loop.train

    def train(model, *args, **kwargs):
        start.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(loop, "train", train)
    finetune(str(source_model), make_task(n_train=40, n_eval=20), config=CONFIG, seed=0, device="cpu",
             progress=False)
    saved = load_file(str(source_model / "model.safetensors"))
    head = [k for k in saved if k.startswith("classifier.")]
    assert sorted(head) == ["classifier.bias", "classifier.weight"]
    for key in head:
        assert start[key].shape == saved[key].shape  # the same shape: only a deliberate reset tells them apart
    assert start["classifier.weight"].abs().max() < 0.2  # N(0, 0.02): 64 draws are far below 10 sigma
    assert torch.equal(start["classifier.bias"], torch.zeros_like(saved["classifier.bias"]))
    body = [k for k in saved if k.startswith("bert.")]
    assert body and all(torch.equal(start[k], saved[k]) for k in body)  # the body is the source's own
