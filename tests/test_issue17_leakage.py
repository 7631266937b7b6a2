"""Issue 17 items 1, 2, 4 and 5: leakage the model cannot tell apart, near-duplicates, the base model's own
provenance, and a dry run that never writes into a run. Each test is named after its item; expected counts are
worked by hand from the rows the test writes."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from test_leakage import rows_for, tiny_config, write_csv

from basefuse.cli.main import main
from basefuse.data.api import load_task
from basefuse.data.near_dup import build_index, jaccard, loose_words, near_hits
from basefuse.errors import BasefuseError
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.runner import make_plan


@pytest.fixture()
def base(tmp_path_factory) -> Path:
    """The tiny BERT (uncased BERT normaliser and pre-tokeniser, like minilm's) as the experiment's base model."""
    from builders import save_base

    return save_base(tmp_path_factory.mktemp("base") / "bert")


def _config(root: Path, base: Path, extra_y: list[dict], **over) -> dict:
    return tiny_config(root, extra_y=extra_y, base_model=str(base), **over)


def _source(folder: Path, own: list[tuple[str, str]], hidden: list[tuple[str, str]]) -> str:
    """A source task whose test split is given (its own last 10 rows), so every hidden row is in train or validation:
    what a finetune on it reads."""
    write_csv(folder / "train.csv", own[:-10] + hidden)
    write_csv(folder / "test.csv", own[-10:])
    return str(folder)


def _row_of(plan, base_label: str) -> dict:
    return next(r for r in plan.leakage["rows"] if r["base"] == base_label)


# ---- item 1: texts the base tokenizer cannot tell apart --------------------------------------------------

def _indistinguishable(text: str, i: int) -> str:
    """Three edits BERT's normaliser and pre-tokeniser undo: a combining accent on every 'o', a control character
    between two words, a comma moved from after a word to before the next."""
    if i % 3 == 0:
        return text.replace("o", "o\u0301")  # "row" -> "ró w" as NFKC sees it; BERT strips the accent
    if i % 3 == 1:
        return text.replace(" ", " \x07", 1)  # BEL: BERT's clean_text drops it, NFKC keeps it
    return text.replace(", ", " ,")  # "row 3, good" -> "row 3 ,good": BERT splits the comma off either way


def test_item1_tokenizer_indistinguishable_texts_are_caught(tmp_path, base):
    # x1's texts carry a comma so the moved-comma edit has something to move
    rows = [(f"x1 row {i}, {'good' if i % 2 else 'bad'}", "yes" if i % 2 else "no") for i in range(100)]
    data = _config(tmp_path, base, [])
    write_csv(tmp_path / "data" / "x1.csv", rows)
    test = list(load_task(str(tmp_path / "data" / "x1.csv")).test["text"])
    assert len(test) == 10
    hidden = [(_indistinguishable(t, i), "yes") for i, t in enumerate(test)]
    from basefuse.data.content import normalise_text
    from basefuse.data.model_view import model_view

    view = model_view(base)
    # by hand: none of the 10 is the same text after NFKC/casefold, all 10 are the same pieces for BERT
    assert sum(normalise_text(h) == normalise_text(t) for (h, _), t in zip(hidden, test)) == 0
    assert [view.key(h) for h, _ in hidden] == [view.key(t) for t in test]
    z1 = {"name": "z1", "spec": _source(tmp_path / "data" / "z1", rows_for("z1"), hidden)}
    data["families"]["y"].append(z1)
    data["leakage"] = {"max_test_overlap": 0.5}
    with pytest.raises(BasefuseError, match=r"10 of the 10 test texts of target 'x1' \(100\.0%\) occur in the "
                                            r"training data of base 'fused \((y|all)\)' \(from 'z1': 10\)"):
        make_plan(parse_experiment_config(data))


def test_item1_the_same_rows_as_the_tokenizer_sees_them_are_the_same_task(tmp_path, base):
    data = _config(tmp_path, base, [])
    twin = [(t.replace(" ", " \x07"), y) for t, y in rows_for("x1")]  # every row: a control character added
    data["families"]["y"].append({"name": "x1b", "spec": str(write_csv(tmp_path / "c" / "x1b.csv", twin))})
    with pytest.raises(BasefuseError, match=r"tasks 'x1' and 'x1b' hold the same data \(same rows, as the base "
                                            r"model's tokenizer sees them"):
        make_plan(parse_experiment_config(data))


# ---- item 2: near-duplicates -----------------------------------------------------------------------------

def test_item2_near_duplicate_units_by_hand():
    assert loose_words("Don’t   stop &amp; GO! 😀 Café.") == ["don", "t", "stop", "go", "cafe"]
    a, b = frozenset({1, 2, 3, 4}), frozenset({3, 4, 5})
    assert jaccard(a, b) == pytest.approx(2 / 5) and jaccard(frozenset(), frozenset()) == 0.0
    # "a b c d": shingles ^a ab bc cd d$; "a b c e": ^a ab bc ce e$ -> 3 shared of 7 = 0.43
    idx = build_index([("a b c d",), ("a b c e",)])
    assert jaccard(idx.shingle_set(0), idx.shingle_set(1)) == pytest.approx(3 / 7)
    queries = build_index([("a b c d",), ("d c b a",), ("x y",), ("",)])
    corpus = build_index([("a b c e",), ("A, b; c. d",), ("hello world",)])
    # query 0: same words as corpus 1 (punctuation and case drop out); 1: the same bag of words reversed;
    # 2: nothing like it; 3: no words, never a near-duplicate
    assert near_hits(queries, corpus, 0.8) == {0, 1}
    # 20 words, the last one changed: 21 shingles each, 19 shared -> 19 / 23 = 0.826
    words = [f"w{i}" for i in range(20)]
    one, other = build_index([(" ".join(words),)]), build_index([(" ".join(words[:-1] + ["changed"]),)])
    assert jaccard(one.shingle_set(0), other.shingle_set(0)) == pytest.approx(19 / 23)
    assert near_hits(one, other, 0.8) == {0} and near_hits(one, other, 0.85) == frozenset()


VOCAB = [f"{c}{v}{d}" for c in "bdfgklmnprst" for v in "aeiou" for d in "nrs"]  # 180 made-up words


def _sentences(n: int, seed: int) -> list[str]:
    """Texts of 8-14 random words, each with an "&" and a "don't", so every edit below has something to change."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choices(VOCAB, k=rng.randint(6, 12))
        words.insert(rng.randrange(1, len(words)), "&")
        words.insert(rng.randrange(1, len(words)), "don't")
        out.append(" ".join(words))
    return out


EDITS = {  # the five edits of issue 17 item 2
    "trailing period": lambda t: t + ".",
    "&amp;": lambda t: t.replace("&", "&amp;"),
    "curly apostrophe": lambda t: t.replace("'", "\u2019"),
    "added emoji": lambda t: t + " \U0001F600",
    "reverse order": lambda t: " ".join(reversed(t.split())),
}


def test_item2_near_duplicates_of_200_test_texts_are_reported_and_refused(tmp_path, base):
    # 2,000 rows: test = 10% = 200 rows; every test text hidden in z1 with one of the five edits (40 each)
    texts = _sentences(2000, seed=1)
    assert len(set(texts)) == 2000
    data = _config(tmp_path, base, [])
    write_csv(tmp_path / "data" / "x1.csv", [(t, "yes" if i % 2 else "no") for i, t in enumerate(texts)])
    test = list(load_task(str(tmp_path / "data" / "x1.csv")).test["text"])
    assert len(test) == 200
    edits = list(EDITS.values())
    hidden = [(edits[i % 5](t), "yes") for i, t in enumerate(test)]
    data["families"]["y"].append({"name": "z1", "spec": _source(tmp_path / "data" / "z1", rows_for("z1", 300), hidden)})
    data["leakage"] = {"max_near_duplicate_overlap": 1.0}
    row = _row_of(make_plan(parse_experiment_config(data)), "fused (all)")
    # none is an exact copy (in either view); all 200 are near-duplicates, reported apart from exact overlap
    assert (row["overlap"], row["n_test"]) == (0, 200)
    assert row["near_overlap"] == 200 and row["near_by_source"] == {"z1": 200}
    assert row["near_fraction"] == pytest.approx(1.0)
    data["leakage"] = {}  # the default: 1% of a test set
    with pytest.raises(BasefuseError, match=r"200 of the 200 test texts of target 'x1' \(100\.0%\) have a "
                                            r"near-duplicate.*leakage\.max_near_duplicate_overlap=0\.01"):
        make_plan(parse_experiment_config(data))


def test_item2_no_near_duplicate_between_unrelated_texts(tmp_path, base):
    """A clean config (six tasks of distinct texts) plans, with 0 near-duplicates in every row."""
    plan = make_plan(parse_experiment_config(_config(tmp_path, base, [])))
    assert plan.leakage["rows"] and all(r["near_overlap"] == 0 for r in plan.leakage["rows"])


def _pair_csv(path: Path, rows: list[tuple[str, str, str]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("text,pair,label\n" + "".join(f'"{a}","{b}",{y}\n' for a, b, y in rows), encoding="utf-8")
    return str(path)


def _pair_config(root: Path, base: Path) -> tuple[dict, list[tuple[str, str, str]]]:
    fams = {}
    for fam in ("x", "y"):
        fams[fam] = []
        for i in (1, 2, 3):
            name = f"{fam}{i}"
            rows = [(f"{name} premise {j}", f"{name} hypothesis {j}", "yes" if j % 2 else "no") for j in range(100)]
            fams[fam].append({"name": name, "spec": _pair_csv(root / "data" / f"{name}.csv", rows), "pair_col": "pair"})
    data = {"name": "pairs", "base_model": str(base), "families": fams, "targets": ["x1"], "seeds": [0]}
    return data, [(f"x1 premise {j}", f"x1 hypothesis {j}", "yes" if j % 2 else "no") for j in range(100)]


def test_item2_pair_task_with_columns_swapped_is_caught(tmp_path, base):
    data, x1 = _pair_config(tmp_path, base)
    # the fingerprint: x1's rows with the two columns swapped are x1's data
    swapped = [(b, a, y) for a, b, y in x1]
    data["families"]["y"].append({"name": "x1b", "spec": _pair_csv(tmp_path / "c" / "x1b.csv", swapped),
                                  "pair_col": "pair"})
    with pytest.raises(BasefuseError, match=r"tasks 'x1' and 'x1b' hold the same data"):
        make_plan(parse_experiment_config(data))
    # the overlap: x1's 10 test pairs swapped, hidden among another task's rows
    data["families"]["y"].pop()
    task = load_task(str(tmp_path / "data" / "x1.csv"), pair_col="pair")
    test = list(zip(task.test["text"], task.test["text_pair"]))
    z1 = [(f"z1 premise {j}", f"z1 hypothesis {j}", "yes" if j % 2 else "no") for j in range(100)]
    _pair_csv(tmp_path / "data" / "z1" / "train.csv", z1[:-10] + [(b, a, "yes") for a, b in test])
    _pair_csv(tmp_path / "data" / "z1" / "test.csv", z1[-10:])  # so every hidden pair is read by a finetune
    data["families"]["y"].append({"name": "z1", "spec": str(tmp_path / "data" / "z1"), "pair_col": "pair"})
    with pytest.raises(BasefuseError, match=r"10 of the 10 test texts of target 'x1' \(100\.0%\) occur in the "
                                            r"training data"):
        make_plan(parse_experiment_config(data))


# ---- item 4: the base model's own provenance ----------------------------------------------------------------

def _finetune(base: Path, spec: str, out: Path, seed: int = 0) -> Path:
    """A real `basefuse finetune --save` (tiny: 1 epoch on 20 examples): its model folder."""
    from basefuse.finetuning.api import finetune
    from basefuse.finetuning.config import FinetuneConfig

    cfg = FinetuneConfig(max_epochs=1, max_train=20, batch_size=8, min_steps=0, max_eval=10, max_test=10)
    finetune(str(base), spec, config=cfg, seed=seed, out=out, save=True, progress=False)
    return out / "model"


def test_item4_base_provenance_finetuned_on_a_target_is_refused(tmp_path, base):
    data = tiny_config(tmp_path)
    model = _finetune(base, str(tmp_path / "data" / "x1.csv"), tmp_path / "ft")
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["task"] == "x1"
    data["base_model"] = str(model)
    with pytest.raises(BasefuseError, match=r"base model '.*ft/model' was finetuned on task 'x1' \(.*metrics\.json\), "
                                            r"which holds the data of target 'x1'"):
        make_plan(parse_experiment_config(data))


def test_item4_base_provenance_fused_from_a_copy_of_a_target_is_refused(tmp_path, base):
    from basefuse.fusion.api import fuse

    data = tiny_config(tmp_path)
    copy = write_csv(tmp_path / "elsewhere" / "renamed.csv", rows_for("x1"))  # x1's rows under another name
    a = _finetune(base, str(copy), tmp_path / "ft_a")
    b = _finetune(base, str(tmp_path / "data" / "y1.csv"), tmp_path / "ft_b", seed=1)  # the tiny vocabulary
    # reads both tasks' texts as the same [UNK]s: another seed keeps the two models apart
    fuse([a, b], tmp_path / "fused", base=base, progress=False, allow_unrelated=True)
    data["base_model"] = str(tmp_path / "fused")
    with pytest.raises(BasefuseError, match=r"was finetuned on task 'renamed' .* which holds the data of target 'x1'"):
        make_plan(parse_experiment_config(data))


def test_item4_base_provenance_unknown_is_recorded(tmp_path, base, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = tiny_config(tmp_path, base_model=str(base))  # a plain HF folder: not made by basefuse
    plan = make_plan(parse_experiment_config(data))
    assert plan.leakage["base_model"]["provenance"] == "provenance unknown"
    assert {r["base_model_provenance"] for r in plan.leakage["rows"]} == {"provenance unknown"}
    from basefuse.reports.leakage import leakage_markdown

    assert f"The base model {base}: provenance unknown" in leakage_markdown(plan.leakage)
    # a base basefuse made from a source that is no target: known, its task counted in every row (pretrained too)
    data["base_model"] = str(_finetune(base, str(tmp_path / "data" / "y1.csv"), tmp_path / "ft"))
    plan = make_plan(parse_experiment_config(data))
    assert plan.leakage["base_model"]["provenance"] == "made by basefuse"
    assert [t["task"] for t in plan.leakage["base_model"]["trained_on"]] == ["y1"]
    pre = _row_of(plan, "pretrained")
    assert pre["provenance"] == ["y1 (in base model)"] and pre["overlap"] == 0
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["experiment", "c.yaml", "--out", "RUN", "--dry-run"])
    out = capsys.readouterr().out
    assert e.value.code in (0, None) and "made by basefuse (finetuned on y1)" in out
    assert "  x1: 0 / 0 of 10 test texts" in out  # the largest exact / near-duplicate overlap of the target


# ---- item 5: a dry run never writes into a run ---------------------------------------------------------------

def test_item5_dry_run_does_not_write_into_run(tmp_path, base, monkeypatch, capsys):
    from basefuse.experiments.rundir import own_run_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_config(tmp_path, base_model=str(base))))
    run = tmp_path / "RUN"  # another config's run: run.json and its own leakage.json
    run.mkdir()
    (run / "run.json").write_text('{"config_name": "other"}')
    (run / "leakage.json").write_text("ORIGINAL")
    busy = tmp_path / "BUSY"  # a run that has just started: it holds the lock, nothing else written yet
    busy.mkdir()
    other = tmp_path / "NOTES"  # a folder that is no run at all
    other.mkdir()
    (other / "notes.txt").write_text("mine")

    def dry(out: Path) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main(["experiment", "c.yaml", "--out", str(out), "--dry-run"])
        assert e.value.code in (0, None)
        return capsys.readouterr().out

    assert "leakage table not written" in dry(run)
    assert (run / "leakage.json").read_text() == "ORIGINAL" and sorted(p.name for p in run.iterdir()) == \
        ["leakage.json", "run.json"]
    with own_run_dir(busy):
        assert "leakage table not written" in dry(busy)
    assert [p.name for p in busy.iterdir()] == [".lock"]
    assert "leakage table not written" in dry(other)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    fresh = tmp_path / "NEW"  # a new folder: the dry run owns it, and a run may take it over later
    assert f"leakage table: {fresh / 'leakage.json'}" in dry(fresh)
    assert json.loads((fresh / "leakage.json").read_text())["rows"]


def test_item2_report_shows_near_duplicates_and_the_largest_share_per_target():
    from basefuse.reports.leakage import leakage_markdown

    table = {"normalisation": "n", "model_view": "v", "max_test_overlap": 0.01, "near_duplicate_method": "m",
             "near_duplicate_jaccard": 0.8, "max_near_duplicate_overlap": 0.05,
             "base_model": {"spec": "minilm", "provenance": "provenance unknown"},
             "rows": [{"target": "t1", "base": "fused (all)", "n_test": 200, "overlap": 0, "fraction": 0.0,
                       "by_source": {}, "near_overlap": 4, "near_fraction": 0.02, "near_by_source": {"s1": 4},
                       "base_model_provenance": "provenance unknown"},
                      {"target": "t1", "base": "intertrained (f)", "n_test": 200, "overlap": 0, "fraction": 0.0,
                       "by_source": {}, "near_overlap": 0, "near_fraction": 0.0, "near_by_source": {},
                       "base_model_provenance": "provenance unknown"}]}
    md = leakage_markdown(table)
    # 4 / 200 = 2.00% near-duplicates, listed although no exact copy; the other pair has none
    assert "| t1 | fused (all) | 200 | 0 | 0.00% |  | 4 | 2.00% | s1 (4) | provenance unknown |" in md
    assert "Largest share per target, exact / near-duplicates: t1 0.00% / 2.00%." in md
    assert "The base model minilm: provenance unknown" in md and "| t1 | intertrained" not in md
