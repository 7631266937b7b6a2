"""`blocks`: consecutive ranges, each closed by the item that brings it to the limit (hand-worked cases)."""
from __future__ import annotations

from basefuse.data.blocks import blocks


def test_blocks_by_hand():
    assert blocks([], 5) == []
    assert blocks([3, 3, 3], 5) == [(0, 2), (2, 3)]  # 3 < 5, 3 + 3 >= 5 closes; the last 3 alone
    assert blocks([10, 1, 1], 5) == [(0, 1), (1, 3)]  # an item over the limit is a block of its own
    assert blocks([5, 5], 5) == [(0, 1), (1, 2)]
    assert blocks([1] * 7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert blocks([2, 2], 100) == [(0, 2)]
