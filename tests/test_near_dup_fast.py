"""`near_dup._word_hashes` (bytes and numpy) gives the numbers the plain definition gives: zlib.crc32 of each word."""
from __future__ import annotations

import random
import zlib

import numpy as np

from basefuse.data.near_dup import _word_hashes, loose_words


def expected(parts: list[str]) -> tuple[list[int], list[int]]:
    words = [loose_words(p) for p in parts]
    return [zlib.crc32(w.encode("utf-8", "surrogatepass")) for ws in words for w in ws], [len(ws) for ws in words]


def test_word_hashes_are_crc32_of_loose_words():
    r = random.Random(0)
    # every ASCII character, entities, non-ASCII letters, marks, emoji, a lone surrogate
    alphabet = [chr(c) for c in range(128)] + ["&amp;", "&eacute;", "&#39;", "é", "ß", "Σ", "\u0301", "😀",
                                          "\ud800", "İ", "ﬁ", "١٢", "K", "&amp;" * 3, "&lt;"]
    parts = ["".join(r.choice(alphabet) for _ in range(r.randint(0, 14))) for _ in range(3000)]
    parts += ["".join(chr(r.randint(32, 126)) for _ in range(r.randint(0, 40))) for _ in range(3000)]
    parts += ["a" * k + " b " + "C" * (k + 1) + "é" * k for k in (1, 63, 64, 65, 300)]  # around the long-word cut
    parts += ["", " ", "\x00", "Don’t   stop &amp; GO! 😀 Café.", "x" * 64 + "," + "y" * 65]
    hashes, counts = _word_hashes(parts)
    want_hashes, want_counts = expected(parts)
    assert hashes.dtype == np.uint64 and hashes.tolist() == want_hashes
    assert counts.tolist() == want_counts
    assert [x.tolist() for x in _word_hashes([])] == [[], []]



def test_word_hashes_of_every_code_point_match_loose_words(monkeypatch):
    """Each character between letters, alone, and after a mark (NFKD reorders marks): the per-character table of
    non-ASCII text gives the words the regular expressions give. Small blocks, so texts straddle them."""
    import sys

    import basefuse.data.blocks as blocks_module

    monkeypatch.setattr(blocks_module, "BLOCK", 4096)
    codes = list(range(0x80, 0x10000)) + list(range(0x10000, sys.maxunicode + 1, 97))
    parts = [f"A{chr(c)}b {chr(c)} x\u0323{chr(c)}\u0301y" for c in codes] + ["\x00é\x00", "é" * 5000]
    hashes, counts = _word_hashes(parts)
    want_hashes, want_counts = expected(parts)
    assert counts.tolist() == want_counts and hashes.tolist() == want_hashes
