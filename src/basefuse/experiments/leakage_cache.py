"""The leakage check's views of a task, cached on disk: every text is put in every view once per machine.

Normalising, tokenizer-viewing and MinHashing every row of every task costs a few CPU seconds, several
times what planning cost before those views existed; a task's views depend only on its rows (its loader
fingerprint), on the code's view versions and on the tokenizer's normaliser and pre-tokeniser, so they are
stored under a hash of exactly those in `$BASEFUSE_CACHE/leakage/` and read back on the next plan. A file
that cannot be read is computed again (and rewritten); nothing else depends on it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from basefuse.io import cache_dir, temp_name

if TYPE_CHECKING:
    from basefuse.data.near_dup import NearIndex
    from basefuse.experiments.leakage import TaskContent

_VERSION = "4"  # 4: strings packed by `_pack` (S/J) instead of JSON alone
_NEAR = ("shingles", "offsets", "bags", "keys")


def cache_key(task_fingerprint: str, view_id: str | None) -> str:
    from basefuse.data.content import NORMALISATION
    from basefuse.data.near_dup import METHOD

    blob = json.dumps([_VERSION, task_fingerprint, NORMALISATION, METHOD, view_id])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _path(key: str) -> Path:
    return cache_dir() / "leakage" / f"{key}.npz"


_SEP = "\x1e"  # whitespace to the normalisation and a control character to BERT: in no text of either view


def _pack(strings: Any) -> np.ndarray:
    """The strings joined by a separator none of them holds (`S`), or as JSON when one does (`J`): joining is
    several times faster than JSON for the ~80,000 texts of the built-in tasks, written on every first plan."""
    strings = list(strings)
    joined = _SEP.join(strings)
    if strings and joined.count(_SEP) == len(strings) - 1:
        blob = b"S" + joined.encode("utf-8", "surrogatepass")
    else:
        blob = b"J" + json.dumps(strings).encode("utf-8", "surrogatepass")
    return np.frombuffer(blob, dtype=np.uint8)


def _unpack(arr: np.ndarray) -> list[str]:
    raw = arr.tobytes()
    text = raw[1:].decode("utf-8", "surrogatepass")
    if raw[:1] == b"S":
        return text.split(_SEP)
    if raw[:1] == b"J":
        return json.loads(text)
    raise ValueError("unknown packing")


def save(key: str, c: "TaskContent") -> None:
    """Store a task's views (best effort: a full or read-only cache only costs the next plan its time)."""
    path = _path(key)
    arrays: dict[str, np.ndarray] = {
        "meta": _pack([c.fingerprint, c.model_fingerprint or "", c.view or ""]),
        "test": _pack(c.test), "seen": _pack(sorted(c.seen)),
        "test_model": _pack(c.test_model), "seen_model": _pack(sorted(c.seen_model))}
    for split, index in (("test_near", c.test_near), ("seen_near", c.seen_near)):
        for field in _NEAR:
            arrays[f"{split}.{field}"] = getattr(index, field)
    tmp = path.with_name(temp_name(path.name))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def load(key: str) -> "TaskContent | None":
    """The stored views, or None when there are none (or they cannot be read)."""
    from basefuse.data.near_dup import NearIndex
    from basefuse.experiments.leakage import TaskContent

    try:
        with np.load(_path(key), allow_pickle=False) as z:
            fingerprint, model_fp, view = _unpack(z["meta"])

            def near(split: str) -> "NearIndex":
                return NearIndex.of(*(z[f"{split}.{f}"] for f in _NEAR))

            return TaskContent(fingerprint=fingerprint, test=tuple(_unpack(z["test"])),
                               seen=frozenset(_unpack(z["seen"])), model_fingerprint=model_fp or None,
                               test_model=tuple(_unpack(z["test_model"])),
                               seen_model=frozenset(_unpack(z["seen_model"])),
                               test_near=near("test_near"), seen_near=near("seen_near"), view=view or None)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
