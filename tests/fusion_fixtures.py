"""Tiny random models built from configs, saved as finetunes of one shared base (test helpers)."""
from __future__ import annotations

from pathlib import Path

import torch

def tiny_config(model_type: str, **kw):
    from transformers import BertConfig, GPT2Config, RobertaConfig, T5Config

    if model_type == "bert":
        return BertConfig(**{**dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=37, vocab_size=99, max_position_embeddings=64), **kw})
    if model_type == "roberta":
        return RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                             vocab_size=99, max_position_embeddings=66, pad_token_id=1, **kw)
    if model_type == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=99, n_positions=64, pad_token_id=0, **kw)
    if model_type == "t5":
        return T5Config(d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=2, vocab_size=99,
                        decoder_start_token_id=0, pad_token_id=0, **kw)
    raise ValueError(model_type)


def save_base(path: Path, model_type: str = "bert", seed: int = 0, **kw) -> Path:
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_config(tiny_config(model_type, **kw))
    model.save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(f"tok{i}" for i in range(99)) + "\n")
    return path


def save_finetune(path: Path, base: Path, num_labels: int, seed: int, noise: float = 1e-3,
                  safe_serialization: bool = True, max_shard_size: str | None = None) -> Path:
    """A `*ForSequenceClassification` whose body is the base plus small noise."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    cfg = AutoConfig.from_pretrained(base, num_labels=num_labels)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(cfg)
    body = AutoModel.from_pretrained(base)
    model.base_model.load_state_dict(body.state_dict(), strict=False)
    with torch.no_grad():
        for p in model.base_model.parameters():
            p.add_(noise * torch.randn_like(p))
    kw = {"safe_serialization": safe_serialization}
    if max_shard_size:
        kw["max_shard_size"] = max_shard_size
    model.save_pretrained(path, **kw)
    return path


def make_family(root: Path, n: int = 3, model_type: str = "bert", labels=(2, 3, 5)) -> tuple[Path, list[Path]]:
    base = save_base(root / "base", model_type)
    srcs = [save_finetune(root / f"ft{i}", base, labels[i % len(labels)], seed=i + 1) for i in range(n)]
    return base, srcs


import pytest  # noqa: E402


@pytest.fixture(autouse=False)
def isolated_cache(tmp_path, monkeypatch):
    """Keep the sha256 cache of fusion runs out of the user's cache folder."""
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
