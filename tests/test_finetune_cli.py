"""`basefuse finetune` end to end on a tiny random BERT and a small CSV task, and its error paths."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from builders import keyword_rows, write_csv


FAST = ["--lr", "3e-3", "--batch-size", "16", "--epochs", "8", "--max-length", "16", "--eval-every", "10", "--patience", "8",
        "--no-progress"]


@pytest.fixture(scope="module")
def csv_task(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "keyword.csv"
    return write_csv(path, keyword_rows(300, 0), header=("sentence", "y"))


@pytest.mark.slow  # a real finetune of the tiny model
def test_cli_finetune_end_to_end(tiny_bert, csv_task, tmp_path, cli):
    out = tmp_path / "run"
    code, stdout, _ = cli(["finetune", "--model", str(tiny_bert), "--task", str(csv_task), "--seed", "0",
                           "--out", str(out), "--save", "--text-col", "sentence", "--label-col", "y", *FAST])
    assert code in (0, None)
    m = json.loads((out / "metrics.json").read_text())
    assert m["accuracy"] > 0.75 and sorted(m["label_names"]) == ["no", "yes"]
    assert m["hyperparameters"]["batch_size"] == 16 and m["hyperparameters"]["max_epochs"] == 8
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "tokenizer.json").is_file()
    assert "test" in stdout and f"{m['accuracy']:.4f}" in stdout


@pytest.mark.parametrize("extra, message", [
    (["--text-col", "nope", "--label-col", "y"], "nope"),
    (["--text-col", "sentence", "--label-col", "y", "--lr", "-1"], "learning_rate"),
    (["--text-col", "sentence", "--label-col", "y", "--save", "--out", None], None),
])
def test_cli_bad_input_exit_2_nothing_written(tiny_bert, csv_task, tmp_path, cli, extra, message):
    out = tmp_path / "run"
    args = ["finetune", "--model", str(tiny_bert), "--task", str(csv_task), *FAST]
    if None in extra:  # --save without --out
        args += [a for a in extra if a not in ("--out", None)]
        message = "--save needs --out"
    else:
        args += [*extra, "--out", str(out)]
    code, _, err = cli(args)
    assert code == 2
    assert err.startswith("basefuse: error: ") and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_unknown_task_and_not_a_model(tiny_bert, tmp_path, cli):
    code, _, err = cli(["finetune", "--model", str(tiny_bert), "--task", "no_such_task",
                        "--out", str(tmp_path / "o")])
    assert code == 2 and "unknown built-in task" in err and "trec_coarse" in err
    code, _, err = cli(["finetune", "--model", str(tmp_path), "--task", "trec_coarse",
                        "--out", str(tmp_path / "o")])
    assert code == 2 and "not a model folder" in err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_existing_out_and_output_inside_input(tiny_bert, csv_task, tmp_path, cli):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code, _, err = cli(["finetune", "--model", str(tiny_bert), "--task", str(csv_task), "--out", str(out),
                        *FAST])
    assert code == 2 and "already exists" in err and (out / "keep.txt").read_text() == "x"
    code, _, err = cli(["finetune", "--model", str(tiny_bert), "--task", str(csv_task),
                        "--out", str(tiny_bert / "sub"), *FAST])
    assert code == 2 and "overlaps input" in err and not (tiny_bert / "sub").exists()


def test_cli_help_via_subprocess():
    proc = subprocess.run([sys.executable, "-m", "basefuse", "finetune", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    for opt in ("--model", "--task", "--seed", "--save", "--max-train", "--patience", "--pair-col", "--device"):
        assert opt in proc.stdout
