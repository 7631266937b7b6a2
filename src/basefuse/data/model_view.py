"""A text as the base model's tokenizer sees it: its own normaliser, then its pre-tokeniser's pieces.

Two texts the tokenizer cannot tell apart (an accent or a combining mark its normaliser strips, a control
character it cleans away, a space moved before punctuation its pre-tokeniser splits off anyway) give the
model the same input, so the leakage check must count them as one text. Same pieces means same token ids
(a vocabulary maps each piece the same way), so comparing pieces is exact for that purpose without
depending on the vocabulary: token ids would also merge unrelated texts whose words are all unknown to a
small vocabulary (all [UNK]).

The tokenizer's Rust calls cost tens of microseconds a text, too slow for every row of every task at
planning time; for the usual BERT normaliser and pre-tokeniser, an ASCII text without control characters
takes an equivalent regular expression instead (checked against the tokenizer itself when the view is made).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from basefuse.errors import BasefuseError

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BERT_PIECES = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")  # BERT's pre-tokeniser on ASCII: words, each punct alone
_PROBES = ("Hello, World! It's 3.5 -- ok?", "a\tb\nc  (d)[e]{f}_g~h`i", "don't stop. ", "  MiXeD caSe  ")


@dataclass(frozen=True)
class ModelView:
    """The base tokenizer's normaliser and pre-tokeniser as one function text -> pieces joined by spaces."""

    name: str  # for leakage.json: which tokenizer, and what of it is used
    ident: str  # sha256 of the normaliser's and pre-tokeniser's settings: all that decides a key
    normalizer: Any
    pre_tokenizer: Any
    bert_lowercase: bool | None  # BERT normaliser + pre-tokeniser: the ASCII fast path applies (lowercasing or not)

    def key(self, text: str) -> str:
        if self.bert_lowercase is not None and text.isascii() and not _CONTROL.search(text):
            return " ".join(_BERT_PIECES.findall(text.lower() if self.bert_lowercase else text))
        return self.slow_key(text)

    def slow_key(self, text: str) -> str:
        if self.normalizer is not None:
            text = self.normalizer.normalize_str(text)
            if self.bert_lowercase is not None and text.isascii():  # cleaned and lowercased: only the split is left
                return " ".join(_BERT_PIECES.findall(text))
        if self.pre_tokenizer is None:
            return " ".join(text.split())
        return " ".join(piece for piece, _ in self.pre_tokenizer.pre_tokenize_str(text))


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
    view = ModelView(f"the base tokenizer's normalizer {norm.get('type')} and pre_tokenizer {pre.get('type')} "
                     f"(settings {ident[:12]})", ident, tok.normalizer, tok.pre_tokenizer, lowercase)
    if lowercase is not None and any(view.key(p) != view.slow_key(p) for p in _PROBES):
        view = ModelView(view.name, ident, tok.normalizer, tok.pre_tokenizer, None)  # not the BERT we know
    return view
