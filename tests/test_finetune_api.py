"""finetune() on a tiny random BERT: it learns, it is reproducible, it writes loadable outputs, it refuses bad input."""
from __future__ import annotations

import json

import pytest
from builders import make_task

from basefuse.errors import BasefuseError
from basefuse.finetuning.api import finetune
from basefuse.finetuning.config import FinetuneConfig

FAST = FinetuneConfig(learning_rate=3e-3, batch_size=16, max_epochs=8, max_length=16, eval_every=10, patience=8,
                      min_steps=0)  # step counts below assume epochs alone set the length


@pytest.fixture(scope="module")
def task():
    return make_task()


@pytest.fixture(scope="module")
def run(tiny_bert, task, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    metrics = finetune(str(tiny_bert), task, config=FAST, seed=0, out=out, save=True, progress=False)
    return out, metrics


@pytest.mark.slow  # real finetunes of the tiny model
def test_learns_a_learnable_task_and_writes_metrics(run, task):
    out, m = run
    assert m["accuracy"] >= 0.85, m["history"]  # keyword task; chance is 0.5
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["accuracy"] == m["accuracy"]
    for key in ("macro_f1", "n", "steps", "best_step", "wall_time_s", "train_samples_per_s", "hyperparameters",
                "seed", "base_fingerprint", "task_fingerprint", "label_names"):
        assert key in on_disk, key
    assert on_disk["n"] == {"train": len(task.train), "validation": len(task.validation), "test": len(task.test)}
    assert on_disk["hyperparameters"]["learning_rate"] == FAST.learning_rate
    assert on_disk["base_fingerprint"].startswith("sha256:") and on_disk["label_names"] == ["no", "yes"]
    assert 0 < m["best_step"] <= m["steps"] and m["train_samples_per_s"] > 0
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


@pytest.mark.slow  # real finetunes of the tiny model
def test_saved_model_loads_with_transformers_and_keeps_best_weights(run, task):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out, m = run
    assert (out / "model" / "model.safetensors").is_file()
    model = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    tok = AutoTokenizer.from_pretrained(out / "model")
    assert model.config.id2label == {0: "no", 1: "yes"}
    enc = tok(task.test["text"][:], padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        preds = model(**enc).logits.argmax(-1).tolist()
    acc = sum(p == y for p, y in zip(preds, task.test["label"][:])) / len(preds)
    assert acc == pytest.approx(m["accuracy"])  # the saved weights are the ones that were tested


@pytest.mark.slow  # real finetunes of the tiny model
def test_same_seed_same_metrics_different_seed_differs(tiny_bert, task, run):
    import torch

    _, first = run
    state = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    again = finetune(str(tiny_bert), task, config=FAST, seed=0, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # caller's RNG untouched
    assert torch.get_num_threads() == threads
    for key in ("accuracy", "macro_f1", "steps", "best_step", "history", "validation"):
        assert again[key] == first[key], key
    other = finetune(str(tiny_bert), task, config=FAST, seed=1, progress=False)
    assert other["history"] != first["history"]


@pytest.mark.slow  # real finetunes of the tiny model
def test_early_stopping_stops_and_restores_best(tiny_bert, task):
    cfg = FAST.model_copy(update={"learning_rate": 1e-9, "max_epochs": 20, "eval_every": 5, "patience": 2,
                                  "min_delta": 0.5})
    m = finetune(str(tiny_bert), task, config=cfg, seed=0, progress=False)
    assert m["stopped_early"] and m["steps"] == 15 and m["best_step"] == 5
    assert m["validation"]["accuracy"] == m["history"][0]["val_accuracy"]


def test_max_train_subsamples_a_task_object(tiny_bert, task):
    m = finetune(str(tiny_bert), task, config=FAST.model_copy(update={"max_train": 40, "max_epochs": 1}),
                 seed=0, progress=False)
    assert m["n"]["train"] == 40 and m["steps"] == 3


@pytest.mark.slow  # real finetunes of the tiny model
def test_intertrained_checkpoint_with_other_head_loads(run, task):
    from builders import make_task as mk

    out, _ = run
    three = mk(n_train=60, n_eval=30, classes=("no", "yes", "other"))
    m = finetune(str(out / "model"), three, config=FAST.model_copy(update={"max_epochs": 1}), seed=0,
                 progress=False)
    assert m["label_names"] == ["no", "yes", "other"]


@pytest.mark.slow  # real finetunes of the tiny model
def test_a_source_head_of_the_same_shape_is_never_carried_over(run, task):
    """Intertraining starts the target with a new head: a kept head would map the source's classes onto
    the target's (e.g. fresh/rotten onto neg/pos) and bias the comparison."""
    import torch
    from safetensors.torch import load_file

    from basefuse.finetuning.api import load_model_and_tokenizer

    out, _ = run
    saved = load_file(str(out / "model" / "model.safetensors"))
    head = {k: v for k, v in saved.items() if k.startswith("classifier.")}
    assert head, "the saved source model has a classifier head"
    with torch.random.fork_rng():
        torch.manual_seed(123)
        model, _ = load_model_and_tokenizer(str(out / "model"), ["neg", "pos"], progress=False)
    fresh = dict(model.named_parameters())
    for key, value in head.items():
        assert fresh[key].shape == value.shape
        assert not torch.allclose(fresh[key].detach(), value), key
    # the body is the source's own
    key = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(fresh[key].detach(), saved[key])


def _replace(task, **kw):
    import dataclasses

    return dataclasses.replace(task, **kw)


@pytest.mark.parametrize("case, message", [
    ("single_class", "single class"),
    ("empty_test", "test split is empty"),
    ("missing_label", "no column 'label'"),
    ("non_string", "must be text"),
    ("unseen_test_label", "never seen in train"),
])
def test_bad_tasks_fail_cleanly_and_write_nothing(tiny_bert, task, tmp_path, case, message):
    from datasets import Dataset

    if case == "single_class":
        bad = _replace(task, train=task.train.filter(lambda r: r["label"] == 0))
    elif case == "empty_test":
        bad = _replace(task, test=task.test.select([]))
    elif case == "missing_label":
        bad = _replace(task, validation=task.validation.remove_columns("label"))
    elif case == "non_string":
        bad = _replace(task, train=Dataset.from_dict({"text": list(range(len(task.train))),
                                                      "label": task.train["label"][:]}))
    else:
        three = make_task(classes=("no", "yes", "other"))
        bad = _replace(three, train=three.train.filter(lambda r: r["label"] != 2))
    out = tmp_path / "out"
    with pytest.raises(BasefuseError, match=message):
        finetune(str(tiny_bert), bad, config=FAST, out=out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_not_a_model_folder(tmp_path, task):
    folder = tmp_path / "notamodel"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(BasefuseError, match="not a model folder"):
        finetune(str(folder), task, config=FAST, out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_broken_model_folder(tmp_path, task):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BasefuseError, match="cannot load"):
        finetune(str(folder), task, config=FAST, out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # real finetunes of the tiny model
def test_save_without_out_and_existing_out(tiny_bert, task, run):
    with pytest.raises(BasefuseError, match="needs an output folder"):
        finetune(str(tiny_bert), task, config=FAST, save=True, progress=False)
    out, _ = run
    before = (out / "metrics.json").read_text()
    with pytest.raises(BasefuseError, match="already exists"):
        finetune(str(tiny_bert), task, config=FAST, out=out, progress=False)
    assert (out / "metrics.json").read_text() == before
    with pytest.raises(BasefuseError, match="overlaps input"):
        finetune(str(tiny_bert), task, config=FAST, out=tiny_bert / "inside", progress=False)


@pytest.mark.slow  # real finetunes of the tiny model
def test_progress_false_is_quiet(tiny_bert, task, tmp_path, capfd):
    finetune(str(tiny_bert), task, config=FAST.model_copy(update={"max_epochs": 1}), seed=0,
             out=tmp_path / "q", save=True, progress=False)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
