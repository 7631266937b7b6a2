"""The tokenizer view's fast paths give what the tokenizer itself gives, on every text we can think of.

Expected values come from the tokenizer's own `normalize_str` and `pre_tokenize_str` (Rust, independent of
`basefuse.data.model_view`'s tables and regular expressions), so a fast path that drifts from it fails here.
"""
from __future__ import annotations

import random

import pytest

from basefuse.data.model_view import ModelView, model_view

ADVERSARIAL = [
    "ΟΔΟΣ Σ σς ΣΑ",  # Python lowercases a final sigma to ς, the tokenizer (per character) does not
    "İstanbul ı I K Å Ω ǅ ẞ Ა",  # special case mappings, compatibility letters, Georgian (newer Unicode)
    "a\u0301\u0323 e\u0323\u0301 ạ́ a\u0300\u0315\u0316b",  # marks reordered by NFD, then stripped
    "x\U0001D165\U0001D166y \U0001D16D\U0001D165 a\u0f39b",  # spacing marks of non-zero class: reordered, kept
    "ﬁ ﬀ Ⅻ ① ＡＢＣ ｶﾞ",  # compatibility characters (BERT does NFD, not NFKD)
    "🥲 🫠 👩‍👩‍👧 ❤️ \u2e52 \u2e5d",  # emoji and punctuation newer than the tokenizer's tables
    "\x00\x07\x1c\x85\u200b\u200d\u00ad\ufeff\ufffd\ue000 ok",  # controls, format characters, private use
    "北京 か が ガ 한국어 각 \u1100\u1161\u11a8 \U00020000\U0002A700\U0002B820\U0002CEB0\U00030000",
    "مَرْحَبًا हिन्दी ไทย",
    "a\u3000b\u2028c\u2029d\u00a0e\u1680f\u202fg\u205fh\ti\nj\rk\x0bl\x0cm",  # every kind of whitespace
    "«»‹›„“”‘’‚–—…·•¡¿§¶†‡※‼⁇⁈⁉ $+<=>^`|~ ¢£¥€₹ ©®™ °±×÷ _",  # punctuation vs symbols
    "\u0345\u0307\u034f\u180e\u061c",
    "Café «naïve» — déjà-vu, 3.5 €!",
]


def tokenizer_key(view: ModelView, text: str) -> str:
    """The tokenizer's own answer: its normaliser, then its pre-tokeniser's pieces."""
    normalized = view.normalizer.normalize_str(text)
    return " ".join(piece for piece, _ in view.pre_tokenizer.pre_tokenize_str(normalized))


def random_texts(seed: int, n: int) -> list[str]:
    """ASCII mixed with combining marks, other scripts, unassigned and astral code points and whitespace."""
    r = random.Random(seed)
    out = []
    for _ in range(n):
        chars = []
        for _ in range(r.randint(1, 30)):
            k = r.random()
            if k < 0.4:
                chars.append(chr(r.randint(32, 126)))
            elif k < 0.55:
                chars.append(chr(r.randint(0x300, 0x36F)))
            elif k < 0.7:
                chars.append(chr(r.randint(0x80, 0x3000)))
            elif k < 0.9:
                chars.append(chr(r.choice((r.randint(0x3000, 0xD7FF), r.randint(0xE000, 0x10FFFF)))))
            else:
                chars.append(r.choice(" \t\n\u3000\u00a0"))
        out.append("".join(chars))
    return out


@pytest.fixture(scope="module")
def view(tmp_path_factory) -> ModelView:
    from builders import save_base

    v = model_view(save_base(tmp_path_factory.mktemp("base") / "bert"))
    assert v is not None and v.bert_lowercase is True and v.chars is not None  # the fast paths are on
    return v


def test_fast_paths_match_the_tokenizer_on_adversarial_and_random_texts(view):
    texts = ADVERSARIAL + random_texts(0, 3000)
    assert [view.key(t) for t in texts] == [tokenizer_key(view, t) for t in texts]
    # most of them took the table, and the reordered spacing marks did not
    assert sum(view.chars.key(t) is not None for t in texts) > 0.9 * len(texts)
    assert view.chars.key("\U0001D16D\U0001D165") is None


def ascii_texts(seed: int, n: int) -> list[str]:
    """Every ASCII character (controls included, which leave the batch path), runs of spaces, empty texts."""
    r = random.Random(seed)
    alphabet = [chr(c) for c in range(128)] + ["  ", "Ab", "9z", " x "] * 8
    return ["".join(r.choice(alphabet) for _ in range(r.randint(0, 25))) for _ in range(n)] + ["", " ", "\t\n"]


def test_batch_keys_match_the_tokenizer_across_blocks(view, monkeypatch):
    import basefuse.data.blocks as blocks_module

    texts = ascii_texts(0, 4000) + ADVERSARIAL + random_texts(2, 500) + ["", "  a  "]
    want = [tokenizer_key(view, t) for t in texts]
    assert view.keys(texts) == want
    monkeypatch.setattr(blocks_module, "BLOCK", 50)  # many blocks, texts longer than a block
    assert view.keys(texts) == want
    assert view.keys([]) == [] and view.keys([""]) == [""] and view.keys(["", ""]) == ["", ""]
    assert view.keys(["Hello, WORLD!!  x"]) == ["hello , world ! ! x"]  # by hand


def test_accents_and_final_sigma_by_hand(tmp_path):
    from builders import save_base

    base = save_base(tmp_path / "bert")
    view = model_view(base)
    assert view.key("Ωμέγα ΣΟΦΟΣ") == "ωμεγα σοφοσ"  # by hand: accents stripped, per-character lowercase


@pytest.mark.slow
def test_fast_paths_match_minilm_on_every_builtin_text():
    """Every text of every built-in task (all splits) through minilm's tokenizer: ~83,000, ~7,300 non-ASCII."""
    from basefuse.data.api import load_task
    from basefuse.data.builtin import BUILTIN_TASKS
    from basefuse.data.content import split_rows
    from basefuse.models import resolve_model

    view = model_view(resolve_model("minilm"))
    assert view is not None and view.chars is not None
    texts = sorted({p for name in BUILTIN_TASKS for rows in split_rows(load_task(name)).values()
                    for parts, _ in rows for p in parts})
    assert sum(not t.isascii() for t in texts) > 5000
    wrong = [t for t, k in zip(texts, view.keys(texts)) if k != tokenizer_key(view, t)]
    assert not wrong, wrong[:3]
    texts = ADVERSARIAL + random_texts(1, 3000)
    assert [view.key(t) for t in texts] == [tokenizer_key(view, t) for t in texts]
