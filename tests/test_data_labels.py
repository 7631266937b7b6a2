"""Labels as every loader ends up with them (`basefuse.data.build`): class names in a fixed order, each row's id
pointing at its own class in every split, and a validation or test label that train never shows refused."""
from __future__ import annotations

from pathlib import Path

import pytest

from basefuse.data.api import load_task
from basefuse.errors import BasefuseError
from builders import write_csv


def write_rows(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, rows)


def labelled(split: str, classes: tuple[str, ...], n: int) -> list[tuple[str, str]]:
    """Rows whose text names their class, so a row's label can be checked against its text."""
    return [(f"{split} row {i} class {classes[i % len(classes)]}", classes[i % len(classes)]) for i in range(n)]


@pytest.mark.parametrize("split", ["validation", "test"])
def test_a_label_train_never_shows_is_refused_in_validation_and_test(tmp_path, split):
    write_rows(tmp_path / "d" / "train.csv", labelled("train", ("a", "b"), 20))
    write_rows(tmp_path / "d" / f"{split}.csv", labelled(split, ("a", "b"), 4) + [("odd one", "zebra")])
    with pytest.raises(BasefuseError, match=rf"\({split}\) has labels never seen in train: zebra"):
        load_task(str(tmp_path / "d"))


# (numbers sort as numbers: test_data_files.py; how CSV label cells are parsed is changing under issue 17 item 6)
@pytest.mark.parametrize("classes,order", [(("yes", "no"), ["no", "yes"]), (("pos", "neg", "neutral"),
                                                                            ["neg", "neutral", "pos"])])
def test_label_ids_follow_the_sorted_class_names_in_every_split(tmp_path, classes, order):
    folder = tmp_path / "d"
    for split, n in (("train", 30), ("validation", 9), ("test", 9)):
        write_rows(folder / f"{split}.csv", labelled(split, classes, n))
    task = load_task(str(folder))
    assert task.label_names == order
    for split in (task.train, task.validation, task.test):
        rows = split[:]
        assert all(text.endswith(f"class {task.label_names[y]}") for text, y in zip(rows["text"], rows["label"]))
