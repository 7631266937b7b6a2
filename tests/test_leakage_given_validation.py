"""Issue 17, tests that miss bugs: a source's *given* validation split is data its finetune reads (early stopping),
so a target's test texts hidden there must count as seen by every base built from that source.

Every task here is a folder of train.csv / validation.csv / test.csv, so no split is carved and every count below
is worked by hand from the rows the test writes.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from basefuse.data.api import load_task
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.leakage import LeakageError, task_content
from basefuse.experiments.protocol import build_plan
from basefuse.experiments.runner import gather_task_facts
from builders import write_csv

N_TEST = 10  # test rows of every task
N_LEAKED = 4  # of the target's test texts, hidden in one source's validation split


def texts(task: str, split: str, n: int) -> list[str]:
    """Lower-case ASCII texts unique to (task, split): normalisation leaves them as they are."""
    return [f"{task} {split} row {i} {'good' if i % 2 else 'bad'}" for i in range(n)]


def write_split(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, [(t, "yes" if i % 2 else "no") for i, t in enumerate(rows)])  # every split holds both classes


def write_task(root: Path, name: str, extra_validation: list[str] = ()) -> str:
    """A task folder with 40 train, 6 (+ extra) validation and N_TEST test rows of its own."""
    folder = root / "data" / name
    write_split(folder / "train.csv", texts(name, "train", 40))
    write_split(folder / "validation.csv", texts(name, "validation", 6) + list(extra_validation))
    write_split(folder / "test.csv", texts(name, "test", N_TEST))
    return str(folder)


def leaked() -> list[str]:
    return texts("x1", "test", N_TEST)[:N_LEAKED]


def test_given_validation_split_texts_count_as_seen(tmp_path):
    spec = write_task(tmp_path, "z1", extra_validation=leaked())
    content = task_content(load_task(spec))
    assert set(leaked()) <= content.seen
    assert set(texts("z1", "validation", 6)) <= content.seen and set(texts("z1", "train", 40)) <= content.seen
    assert not set(texts("z1", "test", N_TEST)) & content.seen  # a source's test split is never trained on


def config(root: Path, max_test_overlap: float) -> dict:
    """Target x1; families x (x1, x2, x3) and y (z1, y2, y3); z1's validation split holds 4 of x1's test texts."""
    fams = {"x": [{"name": n, "spec": write_task(root, n)} for n in ("x1", "x2", "x3")],
            "y": [{"name": "z1", "spec": write_task(root, "z1", extra_validation=leaked())}]
            + [{"name": n, "spec": write_task(root, n)} for n in ("y2", "y3")]}
    return {"name": "leak", "base_model": "unused", "families": fams, "targets": ["x1"], "seeds": [0],
            "leakage": {"max_test_overlap": max_test_overlap}}


def test_target_test_texts_in_a_source_validation_split_are_counted_and_refused(tmp_path):
    cfg = parse_experiment_config(config(tmp_path, max_test_overlap=1.0))
    plan = build_plan(cfg, gather_task_facts(cfg), "base", "fp")
    rows = {tuple(r["provenance"]): r for r in plan.leakage["rows"]}
    with_z1 = [r for names, r in rows.items() if "z1" in names]
    without_z1 = [r for names, r in rows.items() if "z1" not in names]
    assert with_z1 and without_z1  # fused y and all hold z1; fused x does not
    for row in with_z1:
        assert (row["overlap"], row["n_test"], row["by_source"]) == (N_LEAKED, N_TEST, {"z1": N_LEAKED})
        assert row["fraction"] == pytest.approx(N_LEAKED / N_TEST)
    assert all(r["overlap"] == 0 for r in without_z1)

    strict = parse_experiment_config(config(tmp_path / "strict", max_test_overlap=0.3))  # 0.4 is above it
    with pytest.raises(LeakageError, match=r"4 of the 10 test texts of target 'x1' \(40\.0%\).*'z1': 4"):
        build_plan(strict, gather_task_facts(strict), "base", "fp")
