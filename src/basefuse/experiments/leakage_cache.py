"""The leakage check's views of a task, cached on disk: every text is put in every view once per machine.

Normalising, tokenizer-viewing and shingling every row of every task costs a few CPU seconds, several
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
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from basefuse.io import cache_dir, temp_name

if TYPE_CHECKING:
    from basefuse.data.near_dup import NearIndex
    from basefuse.experiments.leakage import TaskContent

_VERSION = "5"  # 4: strings packed by `_pack` (S/J); 5: `_write_arrays`, not np.savez; shingles, no MinHash keys
_NEAR = ("shingles", "offsets", "bags")


def cache_key(task_fingerprint: str, view_id: str | None) -> str:
    from basefuse.data.content import NORMALISATION
    from basefuse.data.near_dup import METHOD

    blob = json.dumps([_VERSION, task_fingerprint, NORMALISATION, METHOD, view_id])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _path(key: str) -> Path:
    return cache_dir() / "leakage" / f"{key}.arrays"


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
        "test": _pack(c.test), "seen": _pack(c.seen),  # a set, in any order
        "test_model": _pack(c.test_model), "seen_model": _pack(c.seen_model)}
    for split, index in (("test_near", c.test_near), ("seen_near", c.seen_near)):
        for field in _NEAR:
            arrays[f"{split}.{field}"] = getattr(index, field)
    tmp = path.with_name(temp_name(path.name))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            _write_arrays(f, arrays)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


_MAGIC = b"basefuse-leakage-arrays\n"


def _write_arrays(f: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """The arrays' bytes one after another, after a JSON header of their names, dtypes, shapes and offsets: no
    pickle, and no zip checksums to compute (np.savez spent most of a write on those)."""
    header, offset = {}, 0
    for name, a in arrays.items():
        header[name] = [a.dtype.str, list(a.shape), offset]
        offset += a.nbytes
    head = json.dumps(header).encode()
    f.write(_MAGIC + len(head).to_bytes(8, "little") + head)
    for a in arrays.values():
        f.write(np.ascontiguousarray(a).data)


def _read_arrays(raw: bytes) -> dict[str, np.ndarray]:
    """What `_write_arrays` wrote (ValueError or KeyError for anything else)."""
    if not raw.startswith(_MAGIC):
        raise ValueError("not a leakage cache file")
    at = len(_MAGIC) + 8
    end = at + int.from_bytes(raw[len(_MAGIC):at], "little")
    out = {}
    for name, (dtype, shape, offset) in json.loads(raw[at:end]).items():
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise ValueError("object arrays are not stored")
        count = int(np.prod(shape))
        out[name] = np.frombuffer(raw, dtype=dt, count=count, offset=end + offset).reshape(shape)
    return out


def load(key: str) -> "TaskContent | None":
    """The stored views, or None when there are none (or they cannot be read)."""
    from basefuse.data.near_dup import NearIndex
    from basefuse.experiments.leakage import TaskContent

    try:
        z = _read_arrays(_path(key).read_bytes())
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
