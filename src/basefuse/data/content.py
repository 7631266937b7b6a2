"""A task's content as the leakage check sees it: normalised texts, and one fingerprint of its rows.

Names, paths and row order say nothing about what a model was trained on, so the check compares
content. Texts are normalised (Unicode NFKC, casefold, invisible format characters dropped,
whitespace collapsed) so that a copy that differs only in case, spacing or a zero-width character
(which tokenizers drop too) still counts as the same text. A sentence pair is its two texts in sorted order:
the model reads both either way, so swapping the columns does not make new data.

`split_rows` reads each split's columns once; the leakage check derives every view it compares (this
normalisation, the base tokenizer's own in `basefuse.data.model_view`, near-duplicate words) from them.
"""
from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from basefuse.data.task import Task

NORMALISATION = "nfkc-casefold-nocf-whitespace-unorderedpair-v3"
_PAIR_SEP = "\x1d"  # cannot survive normalisation inside a text, so a pair never collides with a single text


def normalise_text(text: str) -> str:
    """NFKC, casefold, format characters (Unicode Cf: zero-width space, soft hyphen, BOM) dropped, runs of
    whitespace to one space, stripped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        # only non-ASCII characters can be format characters (a class of all 1.1M code points took 0.5 s to build);
        # each distinct one is looked up once, and most texts hold none (a long article with one £ is not walked)
        drop = {ord(c): None for c in set(text) if c >= "\x80" and unicodedata.category(c) == "Cf"}
        if drop:
            text = text.translate(drop)
    return " ".join(text.split())  # the same as `\s+` -> " ", stripped: both are str.isspace, split is faster


RawRow = tuple[tuple[str, ...], str]  # (the text, or a pair's two texts; the label name)


def split_rows(task: "Task") -> dict[str, list[RawRow]]:
    """Per split (train, validation, test), every row's text(s) and label name, read once."""
    out = {}
    for name, split in (("train", task.train), ("validation", task.validation), ("test", task.test)):
        cols = split[:]  # every column as a list at once (indexing a column iterates row by row)
        labels = [task.label_names[y] for y in cols["label"]]
        parts = zip(cols["text"], cols["text_pair"]) if "text_pair" in cols else ((t,) for t in cols["text"])
        out[name] = [(tuple(p), y) for p, y in zip(parts, labels)]
    return out


def view_text(parts: tuple[str, ...], view: Callable[[str], str]) -> str:
    """One string per row in a view; a pair's two texts sorted, so the order of the columns does not count."""
    if len(parts) == 1:
        return view(parts[0])
    return _PAIR_SEP.join(sorted(view(p) for p in parts))


def view_rows(rows: dict[str, list[RawRow]], view: Callable[[str], str] = normalise_text) -> dict[str, list[str]]:
    """Per split, one string per row: its text (or pair) in `view` and its label name."""
    return {name: [f"{view_text(parts, view)}\x1f{y}" for parts, y in split] for name, split in rows.items()}


def normalised_rows(task: "Task") -> dict[str, list[str]]:
    """Per split, one string per row: its normalised text (or pair) and its label name."""
    return view_rows(split_rows(task))


def row_text(row: str) -> str:
    """The normalised text of a row of `normalised_rows` (its label cut off)."""
    return row.partition("\x1f")[0]  # normalised texts hold no \x1f (it is whitespace to `\s`)


def content_fingerprint(task: "Task", rows: dict[str, list[str]] | None = None, scheme: str = NORMALISATION) -> str:
    """sha256 of the sorted multiset of (normalised text[, pair], label name) rows of all three splits.

    Independent of the task's name, path and row order and of how rows were split (the splits
    of a task loaded without a train budget partition its rows), so the same data under two
    names, two paths, a copy or a shuffled copy has one fingerprint. `rows`: `normalised_rows(task)`
    when the caller has it already (or the rows in another view, named by `scheme`).
    """
    rows = rows or normalised_rows(task)
    every = sorted(r for split in rows.values() for r in split)
    h = hashlib.sha256(f"{scheme}|{len(every)}|".encode())
    h.update(("\x1e".join(every) + "\x1e" if every else "").encode("utf-8", "surrogatepass"))  # one update
    return h.hexdigest()
