"""Fetching pinned wheels: wheelhouse, cache, sha256 re-fetch, and clear errors without a registry."""
from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from basefuse.errors import BasefuseError
from basefuse.offline import wheels as W


def make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


pytestmark = pytest.mark.usefixtures("isolated_cache")  # a fresh cache per test: some look inside it


@pytest.fixture
def good(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    return make_wheel(src / "fake_pkg-1.0-py3-none-any.whl", {"fake_pkg/data.txt": b"hello"})


def fake_pip(monkeypatch, serve: list[Path]) -> list[Path]:
    """Replace the pip subprocess: each call copies the next file of `serve` into dest."""
    calls: list[Path] = []

    def _dl(spec, dest):
        calls.append(dest)
        shutil.copy(serve[min(len(calls), len(serve)) - 1], Path(dest) / "fake_pkg-1.0-py3-none-any.whl")

    monkeypatch.setattr(W, "_pip_download", _dl)
    return calls


def test_fetch_downloads_once_then_uses_cache(monkeypatch, good):
    spec = W.WheelSpec("fake-pkg", "1.0", sha(good))
    calls = fake_pip(monkeypatch, [good])
    p = W.fetch_wheel(spec)
    assert p.parent == W.wheels_dir() and sha(p) == spec.sha256
    assert W.fetch_wheel(spec) == p
    assert len(calls) == 1
    with W.open_wheel(spec) as z:
        assert z.read("fake_pkg/data.txt") == b"hello"
    assert not [q for q in W.wheels_dir().iterdir() if q.name.startswith(".dl-")]  # no temp left


def test_wheelhouse_is_checked_first(monkeypatch, good):
    monkeypatch.setenv("BASEFUSE_WHEELHOUSE", str(good.parent))
    calls = fake_pip(monkeypatch, [good])
    assert W.fetch_wheel(W.WheelSpec("fake_pkg", "1.0", sha(good))) == good
    assert calls == []


def test_wheelhouse_with_wrong_sha_is_an_error(monkeypatch, good):
    monkeypatch.setenv("BASEFUSE_WHEELHOUSE", str(good.parent))
    fake_pip(monkeypatch, [good])
    with pytest.raises(BasefuseError, match="BASEFUSE_WHEELHOUSE"):
        W.fetch_wheel(W.WheelSpec("fake_pkg", "1.0", "0" * 64))
    assert good.exists()  # never delete the user's file


def test_corrupt_cached_wheel_is_refetched(monkeypatch, good):
    spec = W.WheelSpec("fake_pkg", "1.0", sha(good))
    bad = W.wheels_dir() / good.name
    bad.write_bytes(b"tampered")
    calls = fake_pip(monkeypatch, [good])
    p = W.fetch_wheel(spec)
    assert sha(p) == spec.sha256 and len(calls) == 1


def test_wrong_sha_twice_fails_and_keeps_nothing(monkeypatch, tmp_path):
    other = make_wheel(tmp_path / "other.whl", {"x": b"not the pinned bytes"})
    spec = W.WheelSpec("fake_pkg", "1.0", "a" * 64)
    calls = fake_pip(monkeypatch, [other])
    with pytest.raises(BasefuseError, match=r"fetched twice with sha256 .*expected a{64}"):
        W.fetch_wheel(spec)
    assert len(calls) == 2
    assert list(W.wheels_dir().glob("*.whl")) == []


def test_no_registry_names_the_pip_command(monkeypatch):
    # The real pip subprocess, with every index switched off: behaves like an offline machine.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    spec = W.WheelSpec("basefuse-no-such-pkg", "9.9.9", "0" * 64)
    with pytest.raises(BasefuseError) as e:
        W.fetch_wheel(spec)
    msg = str(e.value)
    assert "\n" not in msg
    assert "pip download --no-deps --only-binary=:all: basefuse-no-such-pkg==9.9.9 -d" in msg
    assert str(W.wheels_dir()) in msg
    assert list(W.wheels_dir().iterdir()) == []


def test_not_a_zip_is_a_clear_error(monkeypatch, tmp_path):
    junk = tmp_path / "house" / "fake_pkg-1.0-py3-none-any.whl"
    junk.parent.mkdir()
    junk.write_bytes(b"not a zip")
    monkeypatch.setenv("BASEFUSE_WHEELHOUSE", str(junk.parent))
    with pytest.raises(BasefuseError, match="not a valid zip"):
        W.open_wheel(W.WheelSpec("fake-pkg", "1.0", sha(junk)))
