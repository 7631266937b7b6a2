"""The leakage cache's string packing: joined by a separator when none holds it, JSON otherwise; both round-trip."""
from __future__ import annotations

from basefuse.experiments.leakage_cache import _pack, _unpack


def test_leakage_cache_packing_round_trips():
    for strings in ([], [""], ["", ""], ["a b", "c\x1dd", "é\ud800😀"], ["a\x1eb", "c"], ["x"] * 3):
        packed = _pack(strings)
        assert _unpack(packed) == strings
        assert packed.tobytes()[:1] == (b"S" if strings and not any("\x1e" in s for s in strings) else b"J")
