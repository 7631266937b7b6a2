"""The seed paper's split recipe: deterministic, stratified, disjoint."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from basefuse.data import splits as S


def test_stable_seed_is_a_fixed_function_of_its_parts():
    assert S.stable_seed("trec", "test") == S.stable_seed("trec", "test")
    assert S.stable_seed("trec", "test") != S.stable_seed("trec", "validation")
    # fixed across processes: sha256-based, not Python's salted hash()
    assert S.stable_seed("a") == int.from_bytes(__import__("hashlib").sha256(b"a").digest()[:8], "big") >> 1


def test_carve_size_is_min_1000_or_ten_percent():
    assert S.carve_size(100) == 10
    assert S.carve_size(5381) == 538
    assert S.carve_size(37243) == 1000
    assert S.carve_size(1) == 0
    assert S.carve_size(3) == 1


def test_carve_is_deterministic_disjoint_and_stratified():
    labels = np.array(["a"] * 900 + ["b"] * 90 + ["c"] * 10)
    rest1, test1 = S.carve(labels, "task", "test")
    rest2, test2 = S.carve(labels, "task", "test")
    assert np.array_equal(test1, test2) and np.array_equal(rest1, rest2)
    assert len(test1) == 100 and len(rest1) == 900
    assert not set(rest1) & set(test1)
    assert sorted(np.concatenate([rest1, test1])) == list(range(1000))
    counts = {k: int((labels[test1] == k).sum()) for k in "abc"}
    assert counts == {"a": 90, "b": 9, "c": 1}
    _, other = S.carve(labels, "another-task", "test")
    assert not np.array_equal(test1, other)


def test_carve_keeps_every_class_in_train():
    labels = np.array([0] * 50 + [1])
    rest, drawn = S.carve(labels, "t", "test")
    assert 50 in rest  # the single example of class 1 stays in train


def test_subsample_keeps_every_class_and_is_deterministic():
    labels = np.array([0] * 500 + [1] * 30 + [2] * 2)
    a = S.subsample(labels, 40, "t")
    assert np.array_equal(a, S.subsample(labels, 40, "t"))
    assert len(a) == 40 and len(set(a)) == 40
    assert set(labels[a]) == {0, 1, 2}
    assert np.array_equal(S.subsample(labels, 10_000, "t"), np.arange(len(labels)))


def test_allocate_hits_size_exactly_with_largest_remainders():
    # quotas 2.5, 1.5, 1.0 -> floors 2, 1, 1; the one left goes to the first largest remainder
    assert list(S.allocate(np.array([5, 3, 2]), 5)) == [3, 1, 1]
    assert list(S.allocate(np.array([10, 1]), 3, keep_min=1)) == [3, 0]
    # too small for one of each class: the largest classes get one first
    assert list(S.allocate(np.array([10, 1, 1]), 2, take_min=1)) == [1, 1, 0]
    assert list(S.allocate(np.array([100, 3, 1]), 10, take_min=1)) == [8, 1, 1]


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 60), min_size=2, max_size=6), frac=st.floats(0.0, 1.0))
def test_draw_properties(counts, frac):
    labels = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    size = int(frac * len(labels))
    rest, drawn = S.stratified_draw(labels, size, 7, keep_min=1)
    assert not set(rest) & set(drawn)
    assert len(rest) + len(drawn) == len(labels)
    taken = [int((labels[drawn] == k).sum()) for k in range(len(counts))]
    assert all(t <= c - 1 for t, c in zip(taken, counts))  # each class keeps one
    # proportional within one of the ideal share, unless some class hit its cap and its share moved elsewhere
    if len(drawn) == size and size and all(t < c - 1 for t, c in zip(taken, counts)):
        for t, c in zip(taken, counts):
            assert abs(t - size * c / len(labels)) < 1 + 1e-9
