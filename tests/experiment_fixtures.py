"""A tiny random BERT and tiny learnable text tasks, built offline in a temp folder."""
from __future__ import annotations

import csv
import random
from pathlib import Path

WORDS = ["good", "bad", "great", "awful", "movie", "food", "phone", "ball", "game", "news", "rain", "sun",
         "happy", "sad", "fast", "slow", "red", "blue", "cat", "dog"]


def make_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BertModel with a word-level vocabulary: fast to finetune and to fuse."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=37, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def make_keyword_task(path: Path, positive: str, n: int = 120, seed: int = 0, classes: int = 2) -> Path:
    """Label 1 when the keyword occurs (label 2 for a second keyword when classes=3): learnable in a few steps."""
    rng = random.Random(f"{path.name}|{seed}")
    rows = []
    fillers = [w for w in WORDS if w != positive]
    for i in range(n):
        label = i % classes
        words = rng.sample(fillers[:-1], 4)
        if label == 1:
            words.insert(rng.randrange(5), positive)
        elif label == 2:
            words.insert(rng.randrange(5), fillers[-1])
        rows.append({"text": " ".join(words) + f" {WORDS[i % len(WORDS)]}", "label": f"c{label}"})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label"])
        w.writeheader()
        w.writerows(rows)
    return path


def make_tiny_experiment(root: Path, **overrides) -> dict:
    """A config dict for two families of three tiny tasks on a tiny BERT."""
    base = make_tiny_bert(root / "base")
    keywords = {"x1": "good", "x2": "great", "x3": "happy", "y1": "bad", "y2": "awful", "y3": "sad"}
    paths = {name: make_keyword_task(root / "data" / f"{name}.csv", kw) for name, kw in keywords.items()}
    families = {fam: [{"name": n, "spec": str(paths[n])} for n in keywords if n.startswith(fam)]
                for fam in ("x", "y")}
    cfg = {
        "name": "tiny",
        "base_model": str(base),
        "families": families,
        "targets": ["x1", "y1"],
        "seeds": [0, 1],
        "source_finetune": {"learning_rate": 3e-3, "batch_size": 16, "max_epochs": 2, "max_length": 16,
                            "eval_every": 4, "patience": 2},
        "finetune": {"learning_rate": 3e-3, "batch_size": 16, "max_epochs": 2, "max_length": 16,
                     "eval_every": 4, "patience": 2},
    }
    return cfg | overrides
