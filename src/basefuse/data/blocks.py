"""Byte-level helpers for numpy passes over many texts at once: blocks of about a megabyte, UTF-8 decoding.

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


def utf8_chars(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each non-ASCII character of valid UTF-8 bytes starts, and its code point (lone surrogates, as
    Python's "surrogatepass" writes them, included)."""
    lead = np.flatnonzero(arr >= 0xC0)
    nxt = np.concatenate((arr, np.zeros(3, dtype=np.uint8))).astype(np.uint32)
    b0, b1, b2, b3 = nxt[lead], nxt[lead + 1] & 0x3F, nxt[lead + 2] & 0x3F, nxt[lead + 3] & 0x3F
    code = np.where(b0 < 0xE0, ((b0 & 0x1F) << 6) | b1,
                    np.where(b0 < 0xF0, ((b0 & 0x0F) << 12) | (b1 << 6) | b2,
                             ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3))
    return lead, code
