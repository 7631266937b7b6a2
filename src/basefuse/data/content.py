"""A task's content as the leakage check sees it: normalised texts, and one fingerprint of its rows.

Names, paths and row order say nothing about what a model was trained on, so the check compares
content. Texts are normalised (Unicode NFKC, casefold, whitespace collapsed) so that a copy that
differs only in case or spacing still counts as the same text.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset

    from basefuse.data.task import Task

NORMALISATION = "nfkc-casefold-whitespace-v1"
_SPACE = re.compile(r"\s+")
_PAIR_SEP = "\x1d"  # cannot survive normalisation inside a text, so a pair never collides with a single text


def normalise_text(text: str) -> str:
    """NFKC, casefold, runs of whitespace to one space, stripped."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def normalised_texts(split: "Dataset") -> list[str]:
    """One normalised string per row; a sentence pair is both texts, joined by a separator."""
    texts = [normalise_text(t) for t in split["text"]]
    if "text_pair" in split.column_names:
        texts = [f"{t}{_PAIR_SEP}{normalise_text(p)}" for t, p in zip(texts, split["text_pair"])]
    return texts


def content_fingerprint(task: "Task") -> str:
    """sha256 of the sorted multiset of (normalised text[, pair], label name) rows of all three splits.

    Independent of the task's name, path and row order and of how rows were split (the splits
    of a task loaded without a train budget partition its rows), so the same data under two
    names, two paths, a copy or a shuffled copy has one fingerprint.
    """
    rows = []
    for split in (task.train, task.validation, task.test):
        names = [task.label_names[y] for y in split["label"]]
        rows.extend(f"{t}\x1f{y}" for t, y in zip(normalised_texts(split), names))
    h = hashlib.sha256(f"{NORMALISATION}|{len(rows)}|".encode())
    for row in sorted(rows):
        h.update(row.encode("utf-8", "surrogatepass") + b"\x1e")
    return h.hexdigest()
