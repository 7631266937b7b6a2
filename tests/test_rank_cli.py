"""`basefuse rank` (issue 18, item 3) end to end on a tiny pool: the order, the top-k finetunes, the greedy set and
the files, recomputed here from the scores it stored."""
from __future__ import annotations

import json

import pytest

from builders import keyword_rows, save_base, write_csv
from test_pool_sources import _checkpoint


@pytest.mark.slow
def test_rank_end_to_end(tmp_path, cli):
    base = save_base(tmp_path / "base")
    probes = [write_csv(tmp_path / f"p{i}.csv", keyword_rows(160, seed=40 + i)) for i in (1, 2)]
    members = [str(_checkpoint(tmp_path / f"m{i}", base, seed=i)) for i in (1, 2, 3)]
    out = tmp_path / "rank"
    args = ["rank", *members[:2], f"third={members[2]}", "--base", str(base), "--probe", str(probes[0]),
            "--probe", str(probes[1]), "--probe-seeds", "0,1", "--top-k", "2", "--finetune-seeds", "0",
            "--select", "greedy", "--trained-on", f"m1={probes[0]}", "--out", str(out)]
    code, out_text, err = cli(args)
    assert code == 0, err
    rec = json.loads((out / "ranking.json").read_text())
    assert rec["candidates"] == ["pretrained", "fused (all)", "m1", "m2", "third"]
    mean = {c: sum(r["accuracy"] for t in rec["probe"][c].values() for r in t.values()) / 4 for c in rec["candidates"]}
    assert rec["order"] == sorted(mean, key=lambda c: (-mean[c], c))
    assert rec["finetuned"] == rec["order"][:2] and sorted(rec["finetune"]) == sorted(rec["order"][:2])
    assert all(set(rec["finetune"][c]) == {"p1", "p2"} for c in rec["finetuned"])
    (pool,) = rec["selection"]["pools"]
    assert pool["candidates"] == ["m2", "third"]  # m1 was trained on the probe task p1: no candidate
    members_rank = [c for c in rec["order"] if c in ("m2", "third")]
    assert pool["ranking"] == members_rank  # the same probe scores rank the members in selection
    assert {p["name"]: p["trained_on"] for p in rec["pool"]} == {"m1": ["p1"], "m2": "unknown", "third": "unknown"}  # the spec named the probe task
    assert rec["trained_on_probe"] == ["m1"]
    md = (out / "ranking.md").read_text()
    assert "Trained on a probe task (by name or content): m1." in md
    assert "n/a (n=2; needs 3 tasks)" in md  # two probe tasks: no interval over tasks
    assert "Provenance unknown for m2, third" in md and "## Greedy selection" in md
    assert (out / "ranking.png").stat().st_size > 1000
    # resumable: a second run runs no job and gives the same ranking
    code, _, err = cli(args)
    assert code == 0, err
    assert json.loads((out / "ranking.json").read_text()) == rec


def test_rank_refuses_bad_input_with_one_line(tmp_path, cli):
    base = save_base(tmp_path / "base")
    m = str(_checkpoint(tmp_path / "m1", base, seed=1))
    code, _, err = cli(["rank", m, m, "--base", base, "--probe", "x.csv", "--out", tmp_path / "r"])
    assert code == 2 and "two pool members are named 'm1'" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(["rank", m, "--base", base, "--probe", "x", "--trained-on", "zz=a", "--out", tmp_path / "r"])
    assert code == 2 and "--trained-on names 'zz', which is no pool member" in err
    assert not (tmp_path / "r").exists()
