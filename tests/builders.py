"""Builders shared by the tests (plain functions; the fixtures that use them live in conftest.py):
the one tiny random model builder, finetunes of it, a learnable keyword task, and a tiny experiment."""
from __future__ import annotations

import csv
import os
import random
from pathlib import Path
from types import SimpleNamespace

from basefuse.executors import LocalExecutor

WORDS = [f"w{i}" for i in range(40)] + ["good", "bad", "meh"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_config(model_type: str, **kw):
    """A 2-layer, 32-wide config; BERT's vocabulary is the keyword task's words."""
    from transformers import BertConfig, GPT2Config, RobertaConfig, T5Config

    if model_type == "bert":
        return BertConfig(**{**dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=37, vocab_size=len(SPECIALS) + len(WORDS),
                                    max_position_embeddings=64), **kw})
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
    """A tiny random pretrained model saved like a hub model; BERT gets a word-level fast tokenizer."""
    import torch
    from transformers import AutoModel, BertTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = tiny_config(model_type, **kw)
    AutoModel.from_config(cfg).save_pretrained(path)
    if model_type == "bert":
        vocab = SPECIALS + WORDS + [f"tok{i}" for i in range(cfg.vocab_size - len(SPECIALS) - len(WORDS))]
        (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
        BertTokenizerFast(str(path / "vocab.txt")).save_pretrained(path)
    else:
        (path / "vocab.txt").write_text("\n".join(f"tok{i}" for i in range(99)) + "\n")
    return path


def save_finetune(path: Path, base: Path, num_labels: int, seed: int, noise: float = 1e-3,
                  safe_serialization: bool = True, max_shard_size: str | None = None) -> Path:
    """A `*ForSequenceClassification` whose body is the base plus small noise."""
    import torch
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


def keyword_rows(n: int, seed: int, classes: tuple[str, ...] = ("no", "yes")) -> list[tuple[str, str]]:
    """Label = which keyword occurs ('good' -> yes, 'bad' -> a third class); filler words are noise."""
    r = random.Random(seed)
    keys = {"yes": "good", "other": "bad"}
    rows = []
    for _ in range(n):
        words = [r.choice(WORDS[:40]) for _ in range(r.randrange(2, 9))]
        y = r.choice(classes)
        if y in keys:
            words.insert(r.randrange(len(words) + 1), keys[y])
        rows.append((" ".join(words), y))
    return rows


def make_task(n_train: int = 240, n_eval: int = 60, seed: int = 0, classes: tuple[str, ...] = ("no", "yes")):
    from datasets import Dataset

    from basefuse.data.task import Task

    def split(n: int, s: int) -> Dataset:
        rows = keyword_rows(n, s, classes)
        return Dataset.from_dict({"text": [t for t, _ in rows], "label": [classes.index(y) for _, y in rows]})

    return Task("keyword", split(n_train, seed), split(n_eval, seed + 1), split(n_eval, seed + 2), list(classes))


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


EXPERIMENT_HPARAMS = {"learning_rate": 3e-3, "batch_size": 16, "max_epochs": 8, "max_length": 16, "eval_every": 10,
                      "patience": 5, "min_steps": 0}  # epochs alone set the length: jobs stay short


def make_tiny_experiment(root: Path, **overrides) -> dict:
    """A config dict: two families of three keyword tasks (CSV files: same rule, different samples), local base."""
    base = save_base(root / "base")
    (root / "data").mkdir(parents=True, exist_ok=True)
    families = {}
    for f, fam in enumerate(("x", "y")):
        families[fam] = []
        for i in range(1, 4):
            name = f"{fam}{i}"
            path = write_csv(root / "data" / f"{name}.csv", keyword_rows(240, seed=10 * f + i))
            families[fam].append({"name": name, "spec": str(path)})
    cfg = {"name": "tiny", "base_model": str(base), "families": families, "targets": ["x1"], "seeds": [0, 1],
           "source_finetune": EXPERIMENT_HPARAMS, "finetune": EXPERIMENT_HPARAMS,
           "leakage": {"max_test_overlap": 0.1}}  # short keyword texts collide by chance: x1 shares 2 of 24
    return cfg | overrides


def tiny_classifier():
    """A minimal torch classifier with a HF sequence classifier's interface (mean of token embeddings, a linear
    head, `.logits`): for testing the training loop without transformers."""
    import torch

    class TinyClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(12, 8)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, input_ids, attention_mask, **_):
            mask = attention_mask[..., None].float()
            return SimpleNamespace(logits=self.head((self.emb(input_ids) * mask).sum(1) / mask.sum(1)))

    return TinyClassifier()


def encoded(n: int, seed: int):
    """`n` random 5-token examples of 2 classes, already in the loop's encoded form."""
    import numpy as np

    from basefuse.finetuning.loop import Encoded

    rng = np.random.default_rng(seed)
    return Encoded({"input_ids": rng.integers(1, 12, size=(n, 5))}, np.full(n, 5), rng.integers(0, 2, size=n))



class CountingExecutor(LocalExecutor):
    """Runs jobs in this process like LocalExecutor and remembers the keys it ran (resume tests count them)."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    @property
    def executed(self) -> int:
        return len(self.keys)

    def submit(self, fn, job):
        self.keys.append(job["key"])
        return super().submit(fn, job)


def user_cache() -> Path:
    """The cache basefuse would use outside the tests (same rule as `basefuse.io.cache_dir`)."""
    if os.environ.get("BASEFUSE_CACHE"):
        return Path(os.environ["BASEFUSE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "basefuse"


def cold_beside_sections(md: str) -> tuple[int, int]:
    """Where report.md's unseen and seen "each iteration beside one-shot fusion" tables start; unseen must come first."""
    unseen = md.index("### ColD Fusion, unseen: each iteration of cold (other families) beside one-shot fusion over "
                      "the same pool (fused (other families))")
    seen = md.index("### ColD Fusion, seen: each iteration of cold (seen) beside one-shot fusion over the same pool "
                    "(fused (seen))")
    assert unseen < seen
    return unseen, seen
