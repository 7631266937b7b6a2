"""Issue 17, tests that miss bugs: the precision a CPU finetune actually trains in. `FinetuneConfig.bf16` promises
bf16 autocast on a GPU that supports it and never on CPU, so on CPU every weight and every layer's output during
training is float32 (and `metrics.json` says "fp32"), whatever the config asks and whatever dtype the checkpoint
is stored in (a base fused with `--dtype bfloat16` is a bf16 checkpoint).

The training loop is wrapped, not replaced: hooks on the model it is given record the dtypes it really computes in.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from basefuse.finetuning import loop
from basefuse.finetuning.api import finetune
from basefuse.finetuning.config import FinetuneConfig
from builders import make_task

CONFIG = FinetuneConfig(learning_rate=3e-3, batch_size=16, max_epochs=1, max_length=16, eval_every=2, patience=8,
                        min_steps=0, bf16=True)  # bf16 asked for: on CPU it must not be used


@pytest.fixture(scope="module")
def bf16_base(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT stored in bfloat16, with its tokenizer."""
    from transformers import AutoModel

    out = tmp_path_factory.mktemp("bf16") / "model"
    AutoModel.from_pretrained(tiny_bert).to(torch.bfloat16).save_pretrained(out)
    for f in tiny_bert.iterdir():
        if not (out / f.name).exists():
            shutil.copy(f, out / f.name)
    return out


def recording_train(seen: dict[str, set]):
    """`loop.train`, recording the dtypes of the weights and of every Linear layer's output while training."""
    real = loop.train

    def train(model, *args, **kwargs):
        seen["weights"] |= {p.dtype for p in model.parameters()}

        def hook(module, inputs, output):
            if module.training:  # not the validation and test passes
                seen["outputs"].add(output.dtype)

        handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]
        try:
            return real(model, *args, **kwargs)
        finally:
            for h in handles:
                h.remove()

    return train


@pytest.mark.parametrize("stored", ["float32", "bfloat16"])
def test_cpu_finetune_trains_in_float32_and_says_so(tiny_bert, bf16_base, monkeypatch, stored):
    seen: dict[str, set] = {"weights": set(), "outputs": set()}
    monkeypatch.setattr(loop, "train", recording_train(seen))
    base = tiny_bert if stored == "float32" else bf16_base
    metrics = finetune(str(base), make_task(n_train=40, n_eval=20), config=CONFIG, seed=0, device="cpu",
                       progress=False)
    assert seen["outputs"], "no training forward pass was recorded"
    assert seen == {"weights": {torch.float32}, "outputs": {torch.float32}}
    assert metrics["precision"] == "fp32"
