"""`basefuse finetune`: the options of issue 10 (caps, clipping, accumulation) and the faults of issue 8 (items 7, 10)."""
from __future__ import annotations

import json

import pytest
from builders import keyword_rows, save_base as make_tiny_bert, write_csv

from basefuse.cli.main import main

TINY = ["--batch-size", "16", "--max-length", "16", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="module")
def csv_task(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("data") / "keyword.csv", keyword_rows(300, 0))


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def test_max_eval_max_test_grad_accum_and_clipping_off_reach_the_run(tiny_bert, csv_task, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, _ = run_cli(["finetune", "--model", str(tiny_bert), "--task", str(csv_task), "--out", str(out),
                          *TINY, "--epochs", "1", "--min-steps", "0", "--max-eval", "11", "--max-test", "13",
                          "--grad-accum", "2", "--max-grad-norm", "0", "--lr", "1e-3", "--patience", "100",
                          "--threads", "1"], capsys)
    assert code in (0, None)
    m = json.loads((out / "metrics.json").read_text())
    assert m["threads"] == 1  # --threads reached torch (the default is every core)
    assert m["n"]["validation"] == 11 and m["n"]["test"] == 13
    hp = m["hyperparameters"]
    assert hp["grad_accum"] == 2 and hp["max_grad_norm"] is None and hp["min_steps"] == 0
    # the data file's 300 rows lose min(1000, 10%) = 30 to test and 27 to validation: 243 train rows;
    # 243 / 16 = 16 passes an epoch, 2 a step -> 8 optimiser steps
    assert m["n"]["train"] == 243 and m["steps"] == 8


@pytest.mark.parametrize("option, value, field", [
    ("--epochs", "inf", "max_epochs"), ("--epochs", "nan", "max_epochs"), ("--epochs", "-1", "max_epochs"),
    ("--lr", "inf", "learning_rate"), ("--lr", "nan", "learning_rate"), ("--weight-decay", "inf", "weight_decay"),
    ("--warmup-ratio", "nan", "warmup_ratio"), ("--max-grad-norm", "-1", "max_grad_norm"),
    ("--max-grad-norm", "inf", "max_grad_norm"), ("--grad-accum", "0", "grad_accum"),
    ("--min-steps", "-5", "min_steps"), ("--max-eval", "1", "max_eval"), ("--max-test", "0", "max_test"),
    ("--seed", "-1", "--seed"),
])
def test_epochs_inf_and_other_bad_numbers_one_line_exit_2_nothing_written(tiny_bert, csv_task, tmp_path, capsys,
                                                                         option, value, field):
    out = tmp_path / "run"
    code, _, err = run_cli(["finetune", "--model", str(tiny_bert), "--task", str(csv_task), "--out", str(out),
                            *TINY, option, value], capsys)
    assert code == 2
    assert err.startswith("basefuse: error: ") and err.count("\n") == 1
    assert option in err and field in err
    assert list(tmp_path.iterdir()) == []


def test_diverged_run_lr_huge_exit_2_one_line_no_metrics(tiny_bert, csv_task, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["finetune", "--model", str(tiny_bert), "--task", str(csv_task), "--out", str(out),
                            *TINY, "--lr", "1e30", "--min-steps", "20"], capsys)
    assert code == 2
    assert err.startswith("basefuse: error: training diverged") and "optimiser step" in err
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
