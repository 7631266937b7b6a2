"""Per-source statistics the data-aware methods read: the diagonal Fisher (`fisher`) and the input Gram matrices of
the body's linear layers (`regmean`), estimated with the source's own model on examples of its own task.

Pure torch functions on a loaded model and its batches; loading, caching and the sidecar files live in
`fusion.sidecars`. Keys are the checkpoint's own tensor names of the body (the head is dropped by the fusion).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch


def body_prefix(model: Any, keys: Iterable[str]) -> str:
    """'bert.' when the checkpoint stores the body under the model's `base_model_prefix`, '' for a bare body."""
    prefix = getattr(model, "base_model_prefix", "")
    return f"{prefix}." if prefix and any(k.startswith(prefix + ".") for k in keys) else ""


def fisher_diagonal(model: torch.nn.Module, examples: Iterator[dict[str, torch.Tensor]],
                    keys: dict[str, str]) -> tuple[dict[str, torch.Tensor], int]:
    """Mean over examples of (d log p(ŷ | x) / dθ)², ŷ = argmax of the model's own prediction, per body parameter.

    `examples`: one example per dict (a batch of 1, so each gradient is that example's own); `keys`: parameter name
    in `model` -> tensor name in the checkpoint. Parameters no example reaches (a pooler a head does not read) get 0.
    The model is put in eval mode (no dropout): the Fisher of the deterministic model that is fused.
    """
    model.eval()
    params = dict(model.named_parameters())
    acc = {k: torch.zeros_like(params[p], dtype=torch.float32) for p, k in keys.items()}
    count = 0
    for ex in examples:
        model.zero_grad(set_to_none=True)
        logp = torch.log_softmax(model(**ex).logits.float(), dim=-1)[0]
        logp[int(logp.argmax())].backward()
        for p, k in keys.items():
            g = params[p].grad
            if g is not None:
                acc[k] += g.detach().float() ** 2
        count += 1
    model.zero_grad(set_to_none=True)
    return {k: v / max(count, 1) for k, v in acc.items()}, count


def linear_layers(model: torch.nn.Module, prefix: str, stored: Iterable[str]) -> dict[str, torch.nn.Linear]:
    """The body's `nn.Linear` modules by the checkpoint name of their weight (only those the checkpoint stores)."""
    stored = set(stored)
    body = model.base_model if prefix else model
    out = {}
    for name, mod in body.named_modules():
        key = f"{prefix}{name}.weight" if name else f"{prefix}weight"
        if isinstance(mod, torch.nn.Linear) and key in stored:
            out[key] = mod
    return out


def gram_matrices(model: torch.nn.Module, batches: Iterator[dict[str, torch.Tensor]],
                  layers: dict[str, torch.nn.Linear]) -> tuple[dict[str, torch.Tensor], int]:
    """G = Xᵀ X per layer (float64 sums, returned float32), X the layer's inputs at every non-padding token.

    A forward hook per layer adds each batch's inputs; the attention mask of the batch selects the real tokens.
    Returns the Grams by weight key and the number of tokens seen.
    """
    model.eval()
    grams = {k: torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for k, m in layers.items()}
    state: dict[str, torch.Tensor] = {}

    def hook_for(key: str):
        def hook(_mod: Any, inputs: tuple[torch.Tensor, ...], _out: Any) -> None:
            x = inputs[0]
            mask = state["mask"]
            if x.dim() == 3 and x.shape[:2] == mask.shape:
                x = x[mask]
            x = x.reshape(-1, x.shape[-1]).double()
            grams[key] += x.T @ x
        return hook

    handles = [m.register_forward_hook(hook_for(k)) for k, m in layers.items()]
    tokens = 0
    try:
        with torch.no_grad():
            for batch in batches:
                state["mask"] = batch["attention_mask"].bool()
                tokens += int(state["mask"].sum())
                model(**batch)
    finally:
        for h in handles:
            h.remove()
    return {k: g.float() for k, g in grams.items()}, tokens
