"""Leakage by content and provenance through any depth (issue 8 item 1, issue 11 item 2, issue 12's leak guard).

Each test is named after the fault it guards. Expected counts are worked by hand from rows the test writes.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import yaml

from basefuse.cli.main import main
from basefuse.data.api import load_task
from basefuse.data.content import content_fingerprint, normalise_text
from basefuse.errors import BasefuseError
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.jobs import make_job
from basefuse.experiments.leakage import TargetRun, TaskContent, check_overlap, check_provenance, overlap_table
from basefuse.experiments.protocol import build_plan
from basefuse.experiments.runner import gather_task_facts

N_ROWS = 100  # per task file: test = 10% = 10 rows, validation = 10% of the remaining 90 = 9, train = 81


def rows_for(name: str, n: int = N_ROWS) -> list[tuple[str, str]]:
    """Texts unique to the task by construction (its name is in every text), two balanced classes."""
    return [(f"{name} row {i} {'good' if i % 2 else 'bad'}", "yes" if i % 2 else "no") for i in range(n)]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["text,label", *(f'"{t}",{y}' for t, y in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_config(root: Path, extra_y: list[dict] | None = None, **over) -> dict:
    """Families x (x1..x3) and y (y1..y3) of CSV tasks under root/data; x1 is the target."""
    fams = {}
    for fam in ("x", "y"):
        fams[fam] = [{"name": f"{fam}{i}", "spec": str(write_csv(root / "data" / f"{fam}{i}.csv",
                                                                   rows_for(f"{fam}{i}")))} for i in (1, 2, 3)]
    fams["y"] += extra_y or []
    return {"name": "leak", "base_model": "unused", "families": fams, "targets": ["x1"], "seeds": [0]} | over


def plan_of(data: dict):
    cfg = parse_experiment_config(data)
    return build_plan(cfg, gather_task_facts(cfg), "base", "fp")


# ---- issue 8 item 1: the same data under another name ------------------------------------------------

def _same_data_spec(kind: str, root: Path) -> str:
    src = root / "data" / "x1.csv"
    if kind == "relative path":
        return "./data/x1.csv"
    if kind == "absolute path":  # another absolute spelling of the same file: through a symlinked folder
        (root / "link").symlink_to(root / "data")
        return str((root / "link" / "x1.csv").absolute())
    dst = root / "copies" / "x1b.csv"
    dst.parent.mkdir(exist_ok=True)
    if kind == "byte copy":
        shutil.copyfile(src, dst)
    else:  # rows shuffled: another row order and so another carve of the test split, same rows
        rows = rows_for("x1")
        random.Random(3).shuffle(rows)
        write_csv(dst, rows)
    return str(dst)


@pytest.mark.parametrize("kind", ["relative path", "absolute path", "byte copy", "shuffled copy"])
def test_same_data_under_another_name_is_refused(tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    data = tiny_config(tmp_path)
    data["families"]["y"].append({"name": "x1b", "spec": _same_data_spec(kind, tmp_path)})
    with pytest.raises(BasefuseError, match=r"tasks 'x1' and 'x1b' hold the same data \(same rows"):
        plan_of(data)


def test_same_data_repro_of_issue_8_exits_2_with_one_line_on_dry_run(tmp_path, monkeypatch, capsys):
    from builders import save_base as make_tiny_bert

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    data = tiny_config(tmp_path, base_model=str(make_tiny_bert(tmp_path / "base")))
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(data))
    data["families"]["y"].append({"name": "x1b", "spec": "./data/x1.csv"})
    (tmp_path / "leak.yaml").write_text(yaml.safe_dump(data))
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["experiment", "leak.yaml", "--out", "RUN", "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "'x1' and 'x1b' hold the same data" in err
    assert not (tmp_path / "RUN").exists()  # refused before anything is written
    # The clean config plans, and its dry run writes the overlap table; a real run may then use the folder.
    with pytest.raises(SystemExit) as e:
        main(["experiment", "ok.yaml", "--out", "RUN", "--dry-run"])
    assert e.value.code in (0, None)
    table = json.loads((tmp_path / "RUN" / "leakage.json").read_text())
    assert {r["target"] for r in table["rows"]} == {"x1"} and all(r["overlap"] == 0 for r in table["rows"])
    from basefuse.experiments.config import load_experiment_config
    from basefuse.experiments.runner import _check_run_dir, _make_run_dir

    _make_run_dir(tmp_path / "RUN", force=False)  # not "not a run"
    _check_run_dir(load_experiment_config("ok.yaml"), tmp_path / "RUN", force=False)


# ---- overlap by content ------------------------------------------------------------------------------

def _leaky_source(tmp_path: Path, n_test_texts: int) -> dict:
    """A y task of its own rows plus `n_test_texts` of x1's test texts (respelt: case and spacing changed)
    and one of x1's *train* texts, which must not count."""
    x1 = load_task(str(tmp_path / "data" / "x1.csv"))
    test_texts, train_text = list(x1.test["text"]), x1.train["text"][0]
    rows = rows_for("z1") + [(f"  {t.upper()}\t", "yes") for t in test_texts[:n_test_texts]] + [(train_text, "no")]
    return {"name": "z1", "spec": str(write_csv(tmp_path / "data" / "z1.csv", rows))}


def test_partial_overlap_above_the_threshold_is_refused(tmp_path):
    data = tiny_config(tmp_path)
    data["families"]["y"].append(_leaky_source(tmp_path, 2))
    data["leakage"] = {"max_test_overlap": 0.15}
    # x1 has 10 test rows; z1 holds 2 of them: 2/10 = 20% > 15%. z1 is in fused (y) and fused (all).
    with pytest.raises(BasefuseError, match=r"2 of the 10 test texts of target 'x1' \(20\.0%\) occur in the "
                                            r"training data of base 'fused \((y|all)\)' \(from 'z1': 2\)"):
        plan_of(data)


def test_partial_overlap_below_the_threshold_passes_and_is_recorded(tmp_path):
    data = tiny_config(tmp_path)
    data["families"]["y"].append(_leaky_source(tmp_path, 1))
    data["leakage"] = {"max_test_overlap": 0.1}  # 1/10 is not above 10%: allowed
    plan = plan_of(data)
    rows = {r["base"]: r for r in plan.leakage["rows"]}
    assert set(rows) == {"fused (x)", "fused (y)", "fused (all)", "intertrained (x)", "intertrained (y)"}
    for base in ("fused (y)", "fused (all)"):
        assert (rows[base]["overlap"], rows[base]["n_test"], rows[base]["by_source"]) == (1, 10, {"z1": 1})
        assert rows[base]["fraction"] == pytest.approx(0.1)
    assert rows["fused (x)"]["overlap"] == 0 and rows["fused (x)"]["provenance"] == ["x2", "x3"]
    # ties go to the name among equal sizes: y task sizes are 81, 81, 81 and z1's 90 (112 rows - 10 - 10 carved)
    assert rows["intertrained (y)"]["provenance"] == ["z1"] and rows["intertrained (y)"]["overlap"] == 1


def test_default_threshold_is_one_percent_of_the_test_set(tmp_path):
    data = tiny_config(tmp_path)
    data["families"]["y"].append(_leaky_source(tmp_path, 1))  # 1/10 = 10% > 1%
    with pytest.raises(BasefuseError, match=r"1 of the 10 test texts .* above leakage.max_test_overlap=0.01"):
        plan_of(data)


def test_overlap_counts_test_rows_once_each_whatever_the_number_of_sources():
    """Hand-built: test texts a, b, c, a, d; source s1 saw {c}, s2 saw {a, b}. s1: 1, s2: 3, union: 4 of 5."""
    c = {"t": TaskContent("ft", ("a", "b", "c", "a", "d"), frozenset()),
         "s1": TaskContent("f1", (), frozenset({"c", "zz"})), "s2": TaskContent("f2", (), frozenset({"a", "b"}))}
    base = {"model": {"base": "m"}, "hparams": {}}
    s1 = make_job("finetune", "source s1", base | {"task": {"name": "s1"}})
    s2 = make_job("finetune", "source s2", base | {"task": {"name": "s2"}})
    fu = make_job("fuse", "fuse s1+s2", {"sources": [{"job": s1.key}, {"job": s2.key}]}, (s1.key, s2.key))
    tg = make_job("finetune", "target t", {"model": {"job": fu.key}, "task": {"name": "t"}}, (fu.key,))
    jobs = {j.key: j for j in (s1, s2, fu, tg)}
    runs = [TargetRun("t", tg.key, "fused (all)")]
    table = overlap_table(jobs, runs, c, check_provenance(jobs, runs, c), 0.8)
    (row,) = table["rows"]
    assert (row["overlap"], row["n_test"], row["by_source"]) == (4, 5, {"s1": 1, "s2": 3})
    check_overlap(table)  # 0.8 is not above 0.8
    with pytest.raises(BasefuseError, match=r"4 of the 5 test texts .* \(from 's2': 3, 's1': 1\)"):
        check_overlap(table | {"max_test_overlap": 0.79})


def test_normalisation_folds_case_width_and_whitespace():
    assert normalise_text("  Ｇood\u00a0\tMOVIE\n ") == "good movie"  # fullwidth G, no-break space, tab
    assert normalise_text("Straße") == "strasse"  # casefold, not lower


def test_pair_tasks_compare_the_pair(tmp_path):
    """The same first sentence with another second sentence is another row; the same pair respelt is not."""
    def write(name: str, pairs: list[tuple[str, str]]) -> str:
        lines = [f"{t},{u},{'x' if i % 2 else 'y'}" for i, (t, u) in enumerate(pairs)]
        (tmp_path / name).write_text("text,pair,label\n" + "\n".join(lines) + "\n")
        return str(tmp_path / name)

    specs = [write("p1.csv", [(f"s{i}", f"t{i}") for i in range(20)]),
             write("p2.csv", [(f"S{i}", f" T{i} ") for i in range(20)]),  # respelt: the same pairs
             write("p3.csv", [(f"s{i}", f"other{i}") for i in range(20)])]  # same first texts, other pairs
    fp = [content_fingerprint(load_task(s, pair_col="pair")) for s in specs]
    assert fp[0] == fp[1] != fp[2]


# ---- provenance through any depth ------------------------------------------------------------------

def _ft(task: str, start: dict, deps: tuple[str, ...] = ()):
    return make_job("finetune", f"finetune {task}", {"model": start, "task": {"name": task}}, deps)


def _fuse(label: str, *srcs):
    return make_job("fuse", label, {"sources": [{"job": s.key, "kind": s.kind} for s in srcs], "base": {"base": "m"}},
                    tuple(s.key for s in srcs))


def leaking_graph():
    """fuse2 = fuse(y2 finetuned from fuse1, y3); fuse1 = fuse(x1, y1). Target x1 on fuse2: leaks at depth 3."""
    base = {"base": "m"}
    x1, y1, y3 = _ft("x1", base), _ft("y1", base), _ft("y3", base)
    fuse1 = _fuse("fuse x1+y1", x1, y1)
    y2 = _ft("y2", {"job": fuse1.key, "kind": "fuse"}, (fuse1.key,))
    fuse2 = _fuse("fuse y2+y3", y2, y3)
    target = make_job("finetune", "fused -> x1", {"model": {"job": fuse2.key, "kind": "fuse"},
                                                    "task": {"name": "x1"}}, (fuse2.key,))
    return {j.key: j for j in (x1, y1, y3, fuse1, y2, fuse2, target)}, target


def test_leak_through_a_fusion_of_a_finetune_started_from_a_fusion_is_refused_with_the_path():
    jobs, target = leaking_graph()
    with pytest.raises(BasefuseError, match=r"target 'x1' would be finetuned from base 'fused \(y\)', which was "
                                            r"trained on 'x1': fuse y2\+y3 <- finetune y2 <- fuse x1\+y1 <- "
                                            r"finetune x1$"):
        check_provenance(jobs, [TargetRun("x1", target.key, "fused (y)")])


def test_fusion_of_a_non_source_finetune_has_the_union_provenance():
    """Today's one-level guard raised KeyError on such a graph; the same graph for target y9 is fine."""
    jobs, target = leaking_graph()
    prov = check_provenance(jobs, [TargetRun("y9", target.key, "fused (y)")])
    assert prov[target.key] == {"x1", "y1", "y2", "y3"}
    by_label = {j.label: prov[k] for k, j in jobs.items()}
    assert by_label["finetune y2"] == {"x1", "y1", "y2"} and by_label["fuse x1+y1"] == {"x1", "y1"}


def test_leak_by_content_under_another_name_is_refused_even_past_the_duplicate_check():
    jobs, target = leaking_graph()
    contents = {n: TaskContent(f"fp-{n}", (), frozenset()) for n in ("x1", "y1", "y2", "y3")}
    contents["t"] = TaskContent("fp-y1", (), frozenset())  # target t holds y1's rows
    with pytest.raises(BasefuseError, match=r"target 't' .* trained on 'y1' \(task 'y1' holds the same data\): "
                                            r"fuse y2\+y3 <- finetune y2 <- fuse x1\+y1 <- finetune y1$"):
        check_provenance(jobs, [TargetRun("t", target.key, "fused (y)")], contents)


def test_a_leak_recorded_only_in_a_model_reference_is_still_seen():
    """Deps and model references are both read: a graph that forgets a dep still cannot hide the source."""
    base = {"base": "m"}
    x1, y1 = _ft("x1", base), _ft("y1", base)
    fu = make_job("fuse", "fuse x1+y1", {"sources": [{"job": x1.key}, {"job": y1.key}]}, ())
    tg = make_job("finetune", "fused -> x1", {"model": {"job": fu.key}, "task": {"name": "x1"}}, ())
    jobs = {j.key: j for j in (x1, y1, fu, tg)}
    with pytest.raises(BasefuseError, match="fuse x1\\+y1 <- finetune x1$"):
        check_provenance(jobs, [TargetRun("x1", tg.key, "fused")])
