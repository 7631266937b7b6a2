"""A finetune's seed decides its batch order: the same seed repeats a run exactly, another seed does not,
even with the same initial weights (so seeds really are independent repeats in the report)."""
from __future__ import annotations

import torch

from basefuse.finetuning import loop
from basefuse.finetuning.config import FinetuneConfig
from builders import encoded, tiny_classifier


def final_weights(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)  # the same initial weights every time: only `seed` differs
    model = tiny_classifier()
    cfg = FinetuneConfig(learning_rate=0.05, batch_size=4, max_epochs=1, eval_every=1000, warmup_ratio=0.0,
                         min_steps=0)
    loop.train(model, encoded(32, 0), encoded(8, 1), encoded(8, 2), cfg, seed=seed, device=torch.device("cpu"))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = final_weights(0), final_weights(0), final_weights(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
