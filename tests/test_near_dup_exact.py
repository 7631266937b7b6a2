"""`near_hits` finds every pair a brute-force Jaccard over all pairs finds, and nothing else.

The reference is written here from the definition in `basefuse.data.near_dup`'s docstring: shingles as
(word, word) tuples of `loose_words` with a start and an end mark per part, sets unioned over a pair's parts,
Jaccard over all query x corpus pairs, or the same non-empty bag of words. Rows are adversarial for a filter:
a 12-word vocabulary (every shingle frequent), texts of 1 to 14 words, edits that put pairs on either side of
each threshold, repeated bigrams, empty texts and sentence pairs.
"""
from __future__ import annotations

import random
from collections import Counter

import pytest

from basefuse.data import near_dup
from basefuse.data.near_dup import build_index, loose_words, near_hits

VOCAB = "the a of dog cat sat on mat 1 2 ran far".split()


def shingles(parts: tuple[str, ...]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for p in parts:
        words = loose_words(p)
        if words:
            seq = ["<start>", *words, "<end>"]
            out |= set(zip(seq, seq[1:]))
    return out


def bag(parts: tuple[str, ...]) -> frozenset[tuple[str, int]]:
    return frozenset(Counter(w for p in parts for w in loose_words(p)).items())


def reference(queries: list[tuple[str, ...]], corpus: list[tuple[str, ...]], ts: list[float]) -> list[frozenset[int]]:
    """For each threshold, the queries with a corpus row at Jaccard >= t or of the same non-empty bag of words."""
    corpus_sets = [shingles(c) for c in corpus]
    corpus_bags = {bag(c) for c in corpus}
    best = []  # per query: its largest Jaccard with any corpus row (1.0 when a bag matches)
    for q in queries:
        a = shingles(q)
        same_bag = bool(bag(q)) and bag(q) in corpus_bags
        best.append(1.0 if same_bag else max(len(a & b) / len(a | b) if a | b else 0.0 for b in corpus_sets))
    return [frozenset(i for i, j in enumerate(best) if j >= t and j > 0) for t in ts]


def edit(r: random.Random, words: list[str]) -> list[str]:
    w = list(words)
    for _ in range(r.choice((1, 1, 2, 3))):
        k = r.randrange(6)
        at = r.randrange(len(w) + 1)
        if k == 0 and len(w) > 1:
            del w[min(at, len(w) - 1)]
        elif k == 1 and w:
            w[min(at, len(w) - 1)] = r.choice(VOCAB)
        elif k == 2:
            w.insert(at, r.choice(VOCAB))
        elif k == 3 and len(w) > 1:
            i = min(at, len(w) - 2)
            w[i], w[i + 1] = w[i + 1], w[i]
        elif k == 4:
            w = w[::-1]
        else:
            w = w + w[: r.randint(0, len(w))]  # repeated bigrams
    return w


def rows(seed: int, n_queries: int, n_corpus: int) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    r = random.Random(seed)

    def text(words: list[str]) -> str:
        return " ".join(r.choice((w, w.upper(), w + ",", "«" + w + "»", w.replace("a", "á"))) for w in words)

    def words() -> list[str]:
        return [r.choice(VOCAB) for _ in range(r.randint(1, 14))]

    queries = []
    for _ in range(n_queries):
        queries.append((text(words()), text(words())) if r.random() < 0.2 else (text(words()),))
    queries += [("",), ("!!",), ("dog",), ("dog dog dog dog",)]
    corpus = []
    for _ in range(n_corpus):
        q = r.choice(queries)
        if r.random() < 0.7:
            corpus.append(tuple(text(edit(r, loose_words(p) or ["x"])) for p in q)[:: r.choice((1, -1))])
        else:
            corpus.append((text(words()),))
    corpus += [("",), ("dog",)]
    return queries, corpus


@pytest.mark.parametrize("seed", [0, 1])
def test_near_hits_equal_a_brute_force_jaccard_at_every_threshold(seed, monkeypatch):
    import basefuse.data.blocks as blocks_module

    if seed:
        monkeypatch.setattr(blocks_module, "BLOCK", 1000)  # indexes built from many blocks
        monkeypatch.setattr(near_dup, "_TEXT_BITS", 3)  # postings of more texts than one sort key can number
    queries, corpus = rows(seed, 250, 500)
    q, c = build_index(queries), build_index(corpus)
    ts = [0.2, 0.4, 0.5, 0.6, 2 / 3, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0]
    for t, want in zip(ts, reference(queries, corpus, ts)):
        assert near_hits(q, c, t) == want, t
        assert 0 < len(want) < len(queries)  # the rows put pairs on both sides of every threshold


def test_near_hits_by_hand_at_the_threshold():
    # x: 5 shingles (<s> a, a b, b c, c d, d </s>); y drops d: 4 shingles, 3 shared, union 6: Jaccard 0.5 exactly
    q, c = build_index([("a b c d",)]), build_index([("a b c",), ("z",)])
    assert near_hits(q, c, 0.5) == {0} and near_hits(q, c, 0.5 + 1e-9) == frozenset()
    # 10 words: 11 shingles; one word changed in the middle breaks 2: 9 shared of 13 (0.6923...)
    words = [f"w{i}" for i in range(10)]
    other = words[:5] + ["x"] + words[6:]
    q, c = build_index([(" ".join(words),)]), build_index([(" ".join(other),)])
    assert near_hits(q, c, 9 / 13) == {0} and near_hits(q, c, 0.7) == frozenset()
    # a pair's 14 + 11 shingles; the corpus row holds the first 14: Jaccard 14/25 == 0.56, where 0.56 * 25 computes
    # to 14.000000000000002 (a filter that needs ceil(t * |x|) = 15 shared shingles would miss it)
    first, second = " ".join(f"w{i}" for i in range(13)), " ".join(f"v{i}" for i in range(10))
    assert 0.56 * 25 > 14 and 14 / 25 >= 0.56
    assert near_hits(build_index([(first, second)]), build_index([(first,)]), 0.56) == {0}
