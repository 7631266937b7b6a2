"""Builders shared by the finetune tests: a tiny random BERT folder and a learnable keyword task."""
from __future__ import annotations

import csv
import random
from pathlib import Path

WORDS = [f"w{i}" for i in range(40)] + ["good", "bad", "meh"]


def make_tiny_bert(folder: Path) -> Path:
    """A 2-layer, 32-wide random BertModel plus a word-level BertTokenizerFast, saved like a hub model."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder.parent / f"{folder.name}-vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                     vocab_size=len(WORDS) + 5, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(folder)
    BertTokenizerFast(str(vocab)).save_pretrained(folder)
    return folder


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
