"""A text as the base model's tokenizer sees it: its own normaliser, then its pre-tokeniser's pieces.

Two texts the tokenizer cannot tell apart (an accent or a combining mark its normaliser strips, a control
character it cleans away, a space moved before punctuation its pre-tokeniser splits off anyway) give the
model the same input, so the leakage check must count them as one text. Same pieces means same token ids
(a vocabulary maps each piece the same way), so comparing pieces is exact for that purpose without
depending on the vocabulary: token ids would also merge unrelated texts whose words are all unknown to a
small vocabulary (all [UNK]).

The tokenizer's Rust calls cost tens of microseconds a text, too slow for every row of every task at
planning time; for the usual BERT normaliser and pre-tokeniser, an ASCII text without control characters
takes an equivalent regular expression instead (checked against the tokenizer itself when the view is made;
`ModelView.keys` does the same for many texts at once over their bytes), and any other text a per-character
table filled by the tokenizer itself (`_CharTable`).
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from basefuse.data.blocks import blocks
from basefuse.errors import BasefuseError

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BERT_PIECES = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")  # BERT's pre-tokeniser on ASCII: words, each punct alone
# Byte classes of the ASCII fast path: 0 whitespace (to `\s`), 1 letter or digit, 2 punctuation (any other
# printable), 3 the NUL that separates texts, 4 a control character (its text goes to the tokenizer)
_ASCII_CLASS = np.array([0 if c in b" \t\n\r" else 1 if chr(c).isalnum() else 3 if c == 0 else
                         4 if _CONTROL.match(chr(c)) else 2 for c in range(128)] + [2] * 128, dtype=np.uint8)
_PROBES = ("Hello, World! It's 3.5 -- ok?", "a\tb\nc  (d)[e]{f}_g~h`i", "don't stop. ", "  MiXeD caSe  ",
           "Café «naïve» — Ωμέγα ΣΟΦΟΣ 北京 İstanbul ﬁ …", "x\u200by\u00a0z\u3000w\x85v\ufffdu\U0001f600t")


class _CharTable:
    """BERT's normaliser and pre-tokeniser as a str.translate table, each character's entry asked of the tokenizer.

    Why it is exact: every step of `BertNormalizer` works on one character at a time (cleaning, CJK padding,
    NFD then dropping non-spacing marks, per-character lowercasing), except NFD's canonical reordering, which
    only moves characters of non-zero combining class past one another; and `BertPreTokenizer` splits at
    whitespace and isolates each punctuation character, a property of the character alone. So a text is the
    concatenation of its characters' results, unless a character of non-zero combining class survives the
    normaliser: such a character (and a lone surrogate, which the tokenizer refuses) marks its text for the
    tokenizer itself. Entries are the normalised character with whitespace as " " and punctuation framed by
    spaces; the pieces are what lies between spaces.
    """

    def __init__(self, normalizer: Any, pre_tokenizer: Any) -> None:
        self.normalizer, self.pre_tokenizer = normalizer, pre_tokenizer
        self.table = _LazyTable(self)  # code point -> entry, filled as `str.translate` meets characters
        self.unsafe: set[str] = set()  # characters whose texts go to the tokenizer

    def _entry(self, c: str) -> str | None:
        """The character's piece text, or None when its text must go to the tokenizer: a lone surrogate, or a
        mark of non-zero combining class that stripping would not remove (checked in Python's decomposition
        and again in the tokenizer's output, whose Unicode version may differ)."""
        if 0xD800 <= ord(c) <= 0xDFFF or any(
                unicodedata.combining(d) and not unicodedata.category(d) == "Mn"
                for d in unicodedata.normalize("NFD", c)):
            return None
        out = self.normalizer.normalize_str(c)
        parts = []
        for o in out:
            if unicodedata.combining(o):
                return None
            pieces = [p for p, _ in self.pre_tokenizer.pre_tokenize_str(f"a{o}a")]
            if pieces == ["a", "a"]:
                parts.append(" ")
            elif pieces == ["a", o, "a"]:
                parts.append(f" {o} ")
            elif pieces == [f"a{o}a"]:
                parts.append(o)
            else:
                return None
        return "".join(parts)

    def key(self, text: str) -> str | None:
        """The pieces joined by spaces, or None when the text needs the tokenizer itself."""
        try:
            return " ".join(filter(None, text.translate(self.table).split(" ")))
        except _Unsafe:
            return None


class _Unsafe(Exception):
    """A character whose text must go to the tokenizer (not a LookupError, which `str.translate` would take
    for "keep the character")."""


class _LazyTable(dict):
    """The translation table of a `_CharTable`, each entry asked of the tokenizer the first time `str.translate`
    meets its character: no set of each text's characters to build first."""

    def __init__(self, chars: _CharTable) -> None:
        super().__init__()
        self.chars = chars

    def __missing__(self, code: int) -> str:
        c = chr(code)
        entry = None if c in self.chars.unsafe else self.chars._entry(c)
        if entry is None:
            self.chars.unsafe.add(c)
            raise _Unsafe(c)
        self[code] = entry
        return entry


@dataclass(frozen=True)
class ModelView:
    """The base tokenizer's normaliser and pre-tokeniser as one function text -> pieces joined by spaces."""

    name: str  # for leakage.json: which tokenizer, and what of it is used
    ident: str  # sha256 of the normaliser's and pre-tokeniser's settings: all that decides a key
    normalizer: Any
    pre_tokenizer: Any
    bert_lowercase: bool | None  # BERT normaliser + pre-tokeniser: the fast paths apply (lowercasing or not)
    chars: _CharTable | None = field(default=None, compare=False, repr=False)  # the non-ASCII fast path

    def key(self, text: str) -> str:
        if self.bert_lowercase is not None:
            if text.isascii() and not _CONTROL.search(text):
                return " ".join(_BERT_PIECES.findall(text.lower() if self.bert_lowercase else text))
            if self.chars is not None:
                fast = self.chars.key(text)
                if fast is not None:
                    return fast
        return self.slow_key(text)

    def keys(self, texts: Sequence[str]) -> list[str]:
        """`key` of every text: the ASCII texts of the BERT fast path all at once (`_ascii_bert_keys`), as its
        per-text regular expression was most of a first plan's tokenizer view."""
        out: list[str | None] = [None] * len(texts)
        if self.bert_lowercase is not None:
            batch = [i for i, t in enumerate(texts) if t.isascii() and "\x00" not in t]
            for i, key in zip(batch, _ascii_bert_keys([texts[i] for i in batch], self.bert_lowercase)):
                out[i] = key
        return [self.key(t) if k is None else k for k, t in zip(out, texts)]

    def slow_key(self, text: str) -> str:
        if self.normalizer is not None:
            text = self.normalizer.normalize_str(text)
            if self.bert_lowercase is not None and text.isascii():  # cleaned and lowercased: only the split is left
                return " ".join(_BERT_PIECES.findall(text))
        if self.pre_tokenizer is None:
            return " ".join(text.split())
        return " ".join(piece for piece, _ in self.pre_tokenizer.pre_tokenize_str(text))


def _ascii_bert_keys(texts: Sequence[str], lowercase: bool) -> list[str | None]:
    """`_BERT_PIECES` pieces joined by spaces of ASCII texts without NUL, over byte strings; None for a text with
    another control character (the tokenizer cleans those: `key` asks it).

    The texts are joined by NUL; a piece starts at each punctuation byte and at each letter or digit that
    follows none; whitespace is dropped and one space put before each piece that follows another of its text.
    A few times faster than the regular expression per text, and the same strings; blocks of about 1 MB
    (`basefuse.data.blocks`).
    """
    return [key for i, j in blocks([len(t) + 1 for t in texts]) for key in _ascii_block(texts[i:j], lowercase)]


def _ascii_block(texts: Sequence[str], lowercase: bool) -> list[str | None]:
    blob = "\x00".join(texts).encode("ascii")
    arr = np.frombuffer(blob.lower() if lowercase else blob, dtype=np.uint8)
    if not len(arr):
        return [""] * len(texts)
    cls = _ASCII_CLASS[arr]
    alnum = cls == 1
    start = cls == 2
    start[1:] |= alnum[1:] & ~alnum[:-1]
    keep = np.flatnonzero(cls)
    kept, space = arr[keep], start[keep]
    space[1:] &= kept[:-1] != 0  # a piece after another piece of the same text (a NUL: a new text)
    space[:1] = False
    at = np.cumsum(space.view(np.uint8), dtype=np.int64)
    at += np.arange(len(kept))
    out = np.full(len(kept) + int(at[-1] - len(kept) + 1) if len(kept) else 0, 32, dtype=np.uint8)
    out[at] = kept
    keys: list[str | None] = list(out.tobytes().decode("ascii").split("\x00"))
    control = np.flatnonzero(cls == 4)
    if len(control):
        for k in np.unique(np.searchsorted(np.flatnonzero(arr == 0), control)).tolist():
            keys[k] = None
    return keys


def model_view(model_dir: str | Path) -> ModelView | None:
    """The view of the tokenizer saved in `model_dir` (its tokenizer.json), or None when it has none."""
    from tokenizers import Tokenizer

    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        tok = Tokenizer.from_file(str(path))
        spec = json.loads(path.read_text(encoding="utf-8"))
    except Exception as e:  # tokenizers raises its own exception type
        raise BasefuseError(f"{path}: cannot read the base model's tokenizer ({str(e)[:200]}): "
                            "repair or remove the file") from None
    if not isinstance(spec, dict):
        raise BasefuseError(f"{path}: not a JSON object: repair the base model's tokenizer file or remove it")
    norm, pre = spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}
    lowercase = bool(norm.get("lowercase")) if norm.get("type") == "BertNormalizer" \
        and pre.get("type") == "BertPreTokenizer" else None
    ident = hashlib.sha256(json.dumps([norm, pre], sort_keys=True).encode()).hexdigest()
    name = (f"the base tokenizer's normalizer {norm.get('type')} and pre_tokenizer {pre.get('type')} "
            f"(settings {ident[:12]})")
    chars = _CharTable(tok.normalizer, tok.pre_tokenizer) if lowercase is not None else None
    view = ModelView(name, ident, tok.normalizer, tok.pre_tokenizer, lowercase, chars)
    if lowercase is not None and (any(view.key(p) != view.slow_key(p) for p in _PROBES)
                                  or view.keys(_PROBES) != [view.slow_key(p) for p in _PROBES]):
        view = ModelView(name, ident, tok.normalizer, tok.pre_tokenizer, None)  # not the BERT we know
    return view
