"""The leakage cache's string packing: joined by a separator when none holds it, JSON otherwise; both round-trip."""
from __future__ import annotations

from basefuse.experiments.leakage_cache import _pack, _unpack


def test_leakage_cache_packing_round_trips():
    for strings in ([], [""], ["", ""], ["a b", "c\x1dd", "é\ud800😀"], ["a\x1eb", "c"], ["x"] * 3):
        packed = _pack(strings)
        assert _unpack(packed) == strings
        assert packed.tobytes()[:1] == (b"S" if strings and not any("\x1e" in s for s in strings) else b"J")


def test_leakage_cache_arrays_round_trip_and_a_damaged_file_is_recomputed(tmp_path, monkeypatch):
    import io

    import numpy as np

    from basefuse.data.near_dup import build_index
    from basefuse.experiments import leakage_cache
    from basefuse.experiments.leakage import TaskContent

    arrays = {"a": np.arange(7, dtype=np.uint64), "b": np.zeros((0, 10), dtype=np.uint64),
              "c": np.array([[1, -2], [3, 4]], dtype=np.int32), "d": np.frombuffer(b"xyz", dtype=np.uint8)}
    f = io.BytesIO()
    leakage_cache._write_arrays(f, arrays)
    back = leakage_cache._read_arrays(f.getvalue())
    assert list(back) == list(arrays)
    for name, a in arrays.items():
        assert back[name].dtype == a.dtype and back[name].shape == a.shape and back[name].tolist() == a.tolist()

    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path))
    c = TaskContent(fingerprint="f", test=("a b", "c"), seen=frozenset({"x", "y z"}), model_fingerprint="m",
                    test_model=("a b", "c"), seen_model=frozenset({"x"}), view="v",
                    test_near=build_index([("a b c",), ("c",)]), seen_near=build_index([("x y", "z"), ("y z",)]))
    leakage_cache.save("k", c)
    got = leakage_cache.load("k")
    assert (got.fingerprint, got.test, got.seen, got.model_fingerprint, got.test_model, got.seen_model, got.view) \
        == ("f", ("a b", "c"), frozenset({"x", "y z"}), "m", ("a b", "c"), frozenset({"x"}), "v")
    for split in ("test_near", "seen_near"):
        for field in ("shingles", "offsets", "bags"):
            assert getattr(getattr(got, split), field).tolist() == getattr(getattr(c, split), field).tolist()
    path = next((tmp_path / "leakage").iterdir())
    path.write_bytes(path.read_bytes()[:-5])  # cut short: read as missing, so computed again
    assert leakage_cache.load("k") is None
    path.write_bytes(b"PK\x03\x04 an old npz")
    assert leakage_cache.load("k") is None


def test_content_fingerprint_is_the_documented_sha256():
    """sha256 of "scheme|n|" then every row, sorted, each followed by \\x1e (written out here row by row)."""
    import hashlib
    import random

    from basefuse.data.content import content_fingerprint

    r = random.Random(0)
    alphabet = ["a", "b", " ", "\x1f", "é", "😀", "\ud800", "北"]
    rows = {"train": ["".join(r.choice(alphabet) for _ in range(r.randint(0, 9))) for _ in range(300)],
            "validation": ["x\x1fy"], "test": ["b", "a", "b"]}
    every = sorted(rows["train"] + rows["validation"] + rows["test"])
    h = hashlib.sha256(f"s1|{len(every)}|".encode())
    for row in every:
        h.update(row.encode("utf-8", "surrogatepass") + b"\x1e")
    assert content_fingerprint(None, rows, scheme="s1") == h.hexdigest()
    empty = hashlib.sha256(b"s1|0|").hexdigest()
    assert content_fingerprint(None, {"train": [], "validation": [], "test": []}, scheme="s1") == empty
