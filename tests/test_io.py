"""Output helpers: nothing half-written, previous outputs kept on failure, durable JSONL appends."""
from __future__ import annotations

import json
import os

import pytest

from basefuse import io
from basefuse.errors import BasefuseError


def test_atomic_output_dir_renames_on_success_and_cleans_up_on_error(tmp_path):
    out = tmp_path / "out"
    with io.atomic_output_dir(out) as tmp:
        (tmp / "a.txt").write_text("x")
    assert (out / "a.txt").read_text() == "x"
    with pytest.raises(RuntimeError):
        with io.atomic_output_dir(tmp_path / "other") as tmp:
            (tmp / "b.txt").write_text("y")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_existing_output_needs_force_and_overlap_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BasefuseError, match="--force"):
        with io.atomic_output_dir(out):
            pass
    with pytest.raises(BasefuseError, match="overlaps input"):
        with io.atomic_output_dir(out / "inside", protected=[out]):
            pass


def test_force_keeps_the_previous_output_when_the_final_rename_fails(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    real_replace = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # moving the new output into place
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", flaky)
    with pytest.raises(BasefuseError, match="nothing was written"):
        with io.atomic_output_dir(out, force=True) as tmp:
            (tmp / "new.txt").write_text("new")
    assert (out / "old.txt").read_text() == "old" and not (out / "new.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_append_jsonl_starts_a_fresh_line_after_a_partial_one(tmp_path):
    path = tmp_path / "log.jsonl"
    io.append_jsonl(path, [{"a": 1}])
    with open(path, "a") as f:
        f.write('{"half')  # a crash mid-write
    io.append_jsonl(path, [{"b": 2}, {"c": 3}])
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"a": 1} and lines[1] == '{"half'
    assert [json.loads(x) for x in lines[2:]] == [{"b": 2}, {"c": 3}]
