"""The seed paper's split recipe as pure functions over label arrays.

When a task has no test split, test = min(1000, 10%) is carved from train, and validation
likewise. Every draw is stratified and seeded from the task name with a stable hash, so the
same task gives the same splits on every machine and Python run (unlike `hash()`).
"""
from __future__ import annotations

import hashlib

import numpy as np

SPLIT_RECIPE = "seed-paper-v1: carve min(1000, 10%) stratified; seed=sha256(task|purpose)"
CARVE_MAX = 1000
CARVE_FRACTION = 0.10


def stable_seed(*parts: str) -> int:
    """A 63-bit seed from strings, identical across processes and platforms."""
    h = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") >> 1


def carve_size(n: int) -> int:
    """min(1000, 10% of n), at least 1 when there is anything to carve."""
    if n < 2:
        return 0
    return max(1, min(CARVE_MAX, int(round(n * CARVE_FRACTION))))


def allocate(counts: np.ndarray, size: int, *, keep_min: int = 0, take_min: int = 0) -> np.ndarray:
    """How many to take from each class so the draw mirrors the class proportions.

    Largest-remainder rounding; each class keeps at least `keep_min` and, where the size
    allows, gives at least `take_min` (so small classes are not lost from either side).
    """
    counts = np.asarray(counts, dtype=np.int64)
    cap = np.maximum(counts - keep_min, 0)
    size = int(min(size, cap.sum()))
    lo = np.minimum(take_min, cap)
    if lo.sum() > size:  # not enough room for every class's minimum: favour the largest classes
        take = np.zeros_like(counts)
        for k in np.argsort(-counts, kind="stable")[:size]:
            take[k] = 1 if cap[k] > 0 else 0
        return take
    total = counts.sum()
    quota = size * counts / total if total else np.zeros(len(counts))
    take = np.clip(np.floor(quota).astype(np.int64), lo, cap)
    while take.sum() < size:
        room = np.where(take < cap, quota - take, -np.inf)
        take[int(np.argmax(room))] += 1
    while take.sum() > size:
        excess = np.where(take > lo, quota - take, np.inf)
        take[int(np.argmin(excess))] -= 1
    return take


def stratified_draw(labels: np.ndarray, size: int, seed: int, *, keep_min: int = 0,
                    take_min: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (rest, drawn), drawn stratified by label; both sorted ascending."""
    labels = np.asarray(labels)
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    take = allocate(counts, size, keep_min=keep_min, take_min=take_min)
    rng = np.random.default_rng(seed)
    drawn = []
    for k in range(len(classes)):
        members = np.flatnonzero(inverse == k)
        drawn.append(rng.permutation(members)[: take[k]])
    drawn_idx = np.sort(np.concatenate(drawn)) if drawn else np.array([], dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[drawn_idx] = False
    return np.flatnonzero(mask), drawn_idx.astype(np.int64)


def carve(labels: np.ndarray, task_name: str, purpose: str) -> tuple[np.ndarray, np.ndarray]:
    """Carve a held-out split (purpose 'test' or 'validation') from train; each class keeps >= 1 in train."""
    return stratified_draw(labels, carve_size(len(labels)), stable_seed(task_name, purpose), keep_min=1)


def subsample(labels: np.ndarray, max_train: int, task_name: str) -> np.ndarray:
    """Indices of a stratified, deterministic subsample of at most `max_train`, every class kept if possible."""
    labels = np.asarray(labels)
    if max_train >= len(labels):
        return np.arange(len(labels))
    _, drawn = stratified_draw(labels, max_train, stable_seed(task_name, "max_train"), take_min=1)
    return drawn
