"""`basefuse inspect` and `inspect_sources`: task-vector statistics and unrelated-source flags."""
from __future__ import annotations

import json

import pytest

from basefuse.cli.main import main
from basefuse.fusion.inspect import flag_unrelated, inspect_sources
from builders import make_family, save_base


@pytest.fixture(scope="module")
def fam(tmp_path_factory):
    return make_family(tmp_path_factory.mktemp("ifam"), 3)


def test_statistics(fam):
    base, srcs = fam
    st = inspect_sources([srcs[0], srcs[1], srcs[0]], base=base)
    cos = st["cosine"]
    assert cos[0][2] == pytest.approx(1.0) and abs(cos[0][1]) < 0.2  # independent noise: near orthogonal
    assert 0 < st["sources"][0]["relative_norm"] < 0.05
    assert 0 < st["sources"][0]["head_share"] < 0.05
    assert 0.3 < st["sign_conflict_rate"] < 0.9 and not st["flagged"]


def test_flags_other_pretraining(tmp_path, fam):
    base, srcs = fam
    other = save_base(tmp_path / "other", seed=99)
    st = inspect_sources([*srcs, other], base=base)
    assert [f["source"] for f in st["flagged"]] == [str(other)]


def test_flag_rules():
    assert flag_unrelated(["a", "b"], [0.1, 0.9], 1.0)[0]["source"] == "b"  # relative distance
    assert flag_unrelated(["a", "b", "c"], [0.01, 0.012, 0.3], 1.0)[0]["source"] == "c"  # outlier
    assert flag_unrelated(["a", "b", "c"], [0.01, 0.012, 0.02], 1.0) == []


def test_cli_json_and_table(fam, capsys):
    base, srcs = fam
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["inspect", *map(str, srcs), "--base", str(base), "--json"])
    assert e.value.code == 0
    assert len(json.loads(capsys.readouterr().out)["cosine"]) == 3
    with pytest.raises(SystemExit) as e:
        main(["inspect", *map(str, srcs)])
    assert e.value.code == 0 and "sign-conflict rate" in capsys.readouterr().out


def test_cli_bad_input(fam, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["inspect", str(fam[1][0])])
    assert e.value.code == 2 and "at least 2" in capsys.readouterr().err
