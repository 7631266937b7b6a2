"""A task's content as the leakage check sees it: normalised texts, and one fingerprint of its rows.

Names, paths and row order say nothing about what a model was trained on, so the check compares
content. Texts are normalised (Unicode NFKC, casefold, invisible format characters dropped,
whitespace collapsed) so that a copy that differs only in case, spacing or a zero-width character
(which tokenizers drop too) still counts as the same text.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset

    from basefuse.data.task import Task

NORMALISATION = "nfkc-casefold-nocf-whitespace-v2"
_SPACE = re.compile(r"\s+")
_PAIR_SEP = "\x1d"  # cannot survive normalisation inside a text, so a pair never collides with a single text


def normalise_text(text: str) -> str:
    """NFKC, casefold, format characters (Unicode Cf: zero-width space, soft hyphen, BOM) dropped, runs of
    whitespace to one space, stripped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return _SPACE.sub(" ", text).strip()


def normalised_texts(split: "Dataset") -> list[str]:
    """One normalised string per row; a sentence pair is both texts, joined by a separator."""
    cols = split[:]  # every column as a list at once (indexing a column iterates row by row)
    texts = [normalise_text(t) for t in cols["text"]]
    if "text_pair" in cols:
        texts = [f"{t}{_PAIR_SEP}{normalise_text(p)}" for t, p in zip(texts, cols["text_pair"])]
    return texts


def normalised_rows(task: "Task") -> dict[str, list[str]]:
    """Per split, one string per row: its normalised text (or pair) and its label name."""
    out = {}
    for name, split in (("train", task.train), ("validation", task.validation), ("test", task.test)):
        labels = [task.label_names[y] for y in split[:]["label"]]
        out[name] = [f"{t}\x1f{y}" for t, y in zip(normalised_texts(split), labels)]
    return out


def row_text(row: str) -> str:
    """The normalised text of a row of `normalised_rows` (its label cut off)."""
    return row.partition("\x1f")[0]  # normalised texts hold no \x1f (it is whitespace to `\s`)


def content_fingerprint(task: "Task", rows: dict[str, list[str]] | None = None) -> str:
    """sha256 of the sorted multiset of (normalised text[, pair], label name) rows of all three splits.

    Independent of the task's name, path and row order and of how rows were split (the splits
    of a task loaded without a train budget partition its rows), so the same data under two
    names, two paths, a copy or a shuffled copy has one fingerprint. `rows`: `normalised_rows(task)`
    when the caller has it already.
    """
    rows = rows or normalised_rows(task)
    every = [r for split in rows.values() for r in split]
    h = hashlib.sha256(f"{NORMALISATION}|{len(every)}|".encode())
    for row in sorted(every):
        h.update(row.encode("utf-8", "surrogatepass") + b"\x1e")
    return h.hexdigest()
