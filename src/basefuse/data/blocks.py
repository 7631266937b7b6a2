"""Runs of consecutive items of about a megabyte, for numpy work over many texts at once.

Each fresh large numpy array costs its page faults (a few ms per MB on the machines measured, a large share of
vectorised text work), while arrays of a megabyte or so are served again from memory already touched and stay
in cache. So the leakage check's byte-level passes (`basefuse.data.near_dup`, `basefuse.data.model_view`) take
their texts in blocks of `BLOCK` bytes rather than all at once.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BLOCK = 1 << 20


def blocks(sizes: Sequence[int], limit: int | None = None) -> list[tuple[int, int]]:
    """Ranges [i, j) covering all items in order, each closed by the first item that brings its total size to
    `limit` (default `BLOCK`) or more; an item larger than the limit is a block of its own."""
    limit = BLOCK if limit is None else limit
    if not len(sizes):
        return []
    ends = np.cumsum(np.asarray(sizes, dtype=np.int64))
    out, i = [], 0
    while i < len(ends):
        j = min(int(np.searchsorted(ends, ends[i] - sizes[i] + limit, side="left")) + 1, len(ends))
        out.append((i, j))
        i = j
    return out
