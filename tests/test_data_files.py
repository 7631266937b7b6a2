"""User data files and the bad-input checks every loader shares."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from basefuse.data.api import load_task
from basefuse.errors import BasefuseError

FIX = Path(__file__).parent / "fixtures" / "data"


pytestmark = pytest.mark.usefixtures("isolated_cache")  # a fresh cache per test: some look inside it


def write_csv(path: Path, texts, labels, **extra) -> Path:
    pd.DataFrame({"text": texts, "label": labels, **extra}).to_csv(path, index=False)
    return path


def synthetic(n: int = 60) -> tuple[list[str], list[str]]:
    return [f"example text {i}" for i in range(n)], ["a" if i % 3 else "b" for i in range(n)]


def test_folder_with_given_splits():
    t = load_task(str(FIX / "splits"))
    assert t.name == "splits" and t.label_names == ["neg", "pos"]
    assert (len(t.train), len(t.validation), len(t.test)) == (8, 2, 2)
    assert t.test[0] == {"text": "superb", "label": 1}
    assert t.extra["split_origin"] == {"train": "given", "validation": "given", "test": "given"}


def test_tsv_with_custom_columns_and_carved_splits():
    t = load_task(str(FIX / "questions.tsv"), text_col="sentence", label_col="category")
    assert t.label_names == ["HUM", "LOC", "NUM"]
    assert len(t.train) + len(t.validation) + len(t.test) == 6
    assert t.extra["split_origin"]["test"] == "carved from train"


def test_jsonl_pairs_with_split_column():
    t = load_task(str(FIX / "pairs.jsonl"), text_col="premise", pair_col="hypothesis")
    assert t.has_pair and t.label_names == ["0", "1"]
    assert (len(t.train), len(t.validation), len(t.test)) == (4, 2, 2)
    assert t.train[0] == {"text": "A man is playing a guitar.", "text_pair": "A person plays music.", "label": 0}


def test_parquet_matches_csv(tmp_path):
    texts, labels = synthetic()
    csv = write_csv(tmp_path / "d.csv", texts, labels)
    pq = tmp_path / "d.parquet"
    pd.DataFrame({"text": texts, "label": labels}).to_parquet(pq)
    a, b = load_task(str(csv)), load_task(str(pq))
    assert a.fingerprint == b.fingerprint  # same content, same name "d", same recipe
    assert list(a.train["text"]) == list(b.train["text"])


def test_numeric_labels_sort_numerically(tmp_path):
    texts = [f"t{i}" for i in range(40)]
    t = load_task(str(write_csv(tmp_path / "n.csv", texts, [[2, 10, 1][i % 3] for i in range(40)])))
    assert t.label_names == ["1", "2", "10"]


def test_latin1_csv_is_read(tmp_path):
    p = tmp_path / "l.csv"
    p.write_bytes("text,label\ncaf\xe9,a\nna\xefve,b\nr\xe9sum\xe9,a\nsoup,b\n".encode("latin-1") * 3)
    t = load_task(str(p))
    assert "caf\u00e9" in list(t.train["text"]) + list(t.validation["text"]) + list(t.test["text"])


def test_fingerprint_depends_on_content_and_max_train(tmp_path):
    texts, labels = synthetic()
    a = load_task(str(write_csv(tmp_path / "d.csv", texts, labels)))
    assert a.fingerprint == load_task(str(tmp_path / "d.csv")).fingerprint
    assert a.fingerprint != load_task(str(tmp_path / "d.csv"), max_train=20).fingerprint
    texts[5] = "changed"
    assert a.fingerprint != load_task(str(write_csv(tmp_path / "d.csv", texts, labels))).fingerprint


def test_max_train_subsamples_only_train(tmp_path):
    texts, labels = synthetic(200)
    p = write_csv(tmp_path / "d.csv", texts, labels)
    full, small = load_task(str(p)), load_task(str(p), max_train=30)
    assert len(small.train) == 30 and set(small.train["text"]) <= set(full.train["text"])
    assert list(small.test["text"]) == list(full.test["text"])  # held-out sets do not move with the budget
    assert set(small.train["label"]) == {0, 1}


def test_splits_do_not_overlap(tmp_path):
    texts, labels = synthetic(300)
    t = load_task(str(write_csv(tmp_path / "d.csv", texts, labels)))
    tr, va, te = set(t.train["text"]), set(t.validation["text"]), set(t.test["text"])
    assert not (tr & va or tr & te or va & te) and len(tr | va | te) == 300


# ---- bad input: one line, naming what is wrong ----

def one_line_error(match: str, *args, **kw) -> str:
    with pytest.raises(BasefuseError, match=match) as e:
        load_task(*args, **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_missing_column_names_it_and_lists_available():
    msg = one_line_error("column 'label' not found", str(FIX / "questions.tsv"), text_col="sentence")
    assert "available: sentence, category" in msg and "--label-col" in msg


def test_empty_dataset(tmp_path):
    (tmp_path / "e.csv").write_text("text,label\n")
    one_line_error("is empty", str(tmp_path / "e.csv"))


def test_empty_given_split(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    write_csv(d / "train.csv", *synthetic(20))
    (d / "test.csv").write_text("text,label\n")
    one_line_error(r"\(test\) is empty", str(d))


def test_single_class(tmp_path):
    one_line_error("single class", str(write_csv(tmp_path / "s.csv", [f"t{i}" for i in range(20)], ["x"] * 20)))


def test_test_labels_unseen_in_train(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    write_csv(d / "train.csv", *synthetic(20))
    write_csv(d / "test.csv", ["q"], ["zebra"])
    one_line_error("never seen in train: zebra", str(d))


def test_non_string_text(tmp_path):
    p = tmp_path / "n.jsonl"
    p.write_text("\n".join(json.dumps({"text": t, "label": i % 2}) for i, t in
                           enumerate(["ok", 42, "fine", "also"])))
    one_line_error("non-string text in row 1", str(p))


def test_missing_label(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text("\n".join(json.dumps({"text": f"t{i}", "label": None if i == 3 else i % 2}) for i in range(6)))
    one_line_error("missing label in row 3", str(p))


def test_unknown_builtin_lists_valid_ones():
    msg = one_line_error("unknown built-in task 'trec_corse'", "trec_corse")
    assert "did you mean trec_coarse" in msg and "rotten_tomatoes" in msg and "bbc_news" in msg


def test_missing_file():
    one_line_error("not found", "no/such/file.csv")


def test_bad_split_value(tmp_path):
    texts, labels = synthetic(10)
    one_line_error("'holdout'", str(write_csv(tmp_path / "s.csv", texts, labels, split=["holdout"] * 10)))
