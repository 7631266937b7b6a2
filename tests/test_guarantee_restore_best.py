"""The loop ends on the weights of its best validation score, not on its last step.

The validation score is stubbed (0.9, then 0.1 for ever), the learning rate is high enough that
the weights move at every step, so only a restore makes the final weights those of the first
evaluation. Coupled to the loop only through `train(...)` and the module-level `evaluate` it calls.
"""
from __future__ import annotations

import torch

from basefuse.finetuning import loop
from basefuse.finetuning.config import FinetuneConfig
from builders import encoded, tiny_classifier


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_best_weights_are_restored_before_testing(monkeypatch):
    torch.manual_seed(0)
    model = tiny_classifier()
    train_enc, val_enc, test_enc = encoded(32, 0), encoded(8, 1), encoded(8, 2)
    scores = iter([0.9, 0.1, 0.1])
    at_val: list[dict] = []
    at_test: list[dict] = []

    def fake_evaluate(m, enc, batch_size, device, *_precision):
        if enc is test_enc:
            at_test.append(state(m))
            return {"accuracy": 0.5, "macro_f1": 0.5}
        at_val.append(state(m))
        acc = next(scores, 0.1)
        return {"accuracy": acc, "macro_f1": acc}

    monkeypatch.setattr(loop, "evaluate", fake_evaluate)
    cfg = FinetuneConfig(learning_rate=0.05, batch_size=8, max_epochs=20, eval_every=1, patience=2, min_delta=0.0,
                         warmup_ratio=0.0)
    loop.train(model, train_enc, val_enc, test_enc, cfg, seed=0, device=torch.device("cpu"))

    first, last = at_val[0], at_val[-1]
    assert len(at_val) >= 3
    assert any(not torch.equal(first[k], last[k]) for k in first), "weights must move for the test to mean anything"
    assert len(at_test) == 1
    for k in first:
        torch.testing.assert_close(at_test[0][k], first[k], rtol=0, atol=0)
        torch.testing.assert_close(model.state_dict()[k], first[k], rtol=0, atol=0)
