"""A `--base` of another hidden size than the sources is refused, naming the base and what to use instead."""
from __future__ import annotations

import pytest

from basefuse.cli.main import main
from basefuse.errors import BasefuseError
from basefuse.fusion.api import fuse
from builders import make_family, save_base


@pytest.fixture(scope="module")
def family_and_wide_base(tmp_path_factory):
    root = tmp_path_factory.mktemp("shape")
    base, srcs = make_family(root, 2)
    wide = save_base(root / "wide-base", "bert", hidden_size=48)   # the sources are 32 wide
    return srcs, wide


def test_api_refuses_a_base_of_another_hidden_size(family_and_wide_base, tmp_path, monkeypatch):
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    srcs, wide = family_and_wide_base
    with pytest.raises(BasefuseError, match=r"in base \S*wide-base .*--base") as e:
        fuse(srcs, tmp_path / "out", base=wide, method="task-arithmetic", progress=False, hash_cache=False)
    assert "[48" in str(e.value) and "32" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_cli_refuses_it_with_exit_2(family_and_wide_base, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    srcs, wide = family_and_wide_base
    with pytest.raises(SystemExit) as e:
        main(["fuse", *map(str, srcs), "--base", str(wide), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "wide-base" in err and "--base" in err
    assert not (tmp_path / "out").exists()
