"""linear_probe() on a tiny random BERT: it matches scikit-learn fitted here on the same features, its features are
the masked mean computed by hand, its cache saves every forward pass and distrusts a bad file, the seed draws the
training budget, and the `probe` job kind and `basefuse probe` write finetuning's record format."""
from __future__ import annotations

import json

import numpy as np
import pytest
from builders import keyword_rows, make_task, write_csv

from basefuse.errors import BasefuseError
from basefuse.probing.config import ProbeConfig

CFG = ProbeConfig(max_length=16, batch_size=32)

# the keys of finetuning's metrics.json (basefuse.finetuning.api._metrics_dict) a report reads of any evaluation
RECORD_KEYS = {"task", "model", "seed", "accuracy", "macro_f1", "test", "validation", "n", "wall_time_s",
               "hyperparameters", "base_fingerprint", "task_fingerprint", "task_source", "label_names", "family",
               "device", "threads", "versions"}


@pytest.fixture(scope="module")
def task():
    return make_task(n_train=240, n_eval=60)


@pytest.fixture
def forward_calls(monkeypatch):
    """Count the batches of forward passes (every feature extraction goes through forward_batches)."""
    import basefuse.probing.features as F

    calls = []
    real = F.forward_batches

    def counted(net, enc, **kw):
        calls.append(len(enc.lengths))
        return real(net, enc, **kw)

    monkeypatch.setattr(F, "forward_batches", counted)
    return calls


def _features(model, task):
    from basefuse.finetuning.api import base_fingerprint, task_fingerprint
    from basefuse.probing.features import split_features

    import torch

    feats, _ = split_features(str(model), base_fingerprint(str(model)), task_fingerprint(task),
                              {s: getattr(task, s) for s in ("train", "validation", "test")}, max_length=16,
                              pooling="mean", batch_size=32, device=torch.device("cpu"))
    return feats


def test_probe_matches_a_scikit_learn_reference_on_the_same_features(tiny_bert, task, isolated_cache):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import StandardScaler

    from basefuse.probing.probe import linear_probe

    m = linear_probe(str(tiny_bert), task, config=CFG, seed=0)
    f = _features(tiny_bert, task)
    y = {s: np.asarray(getattr(task, s)["label"]) for s in ("train", "validation", "test")}
    scaler = StandardScaler().fit(f["train"])  # fit on train only
    best_c, best_acc, best_clf = None, -1.0, None
    for c in [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]:  # ascending: a tie keeps the smaller C
        clf = LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(f["train"]), y["train"])
        acc = accuracy_score(y["validation"], clf.predict(scaler.transform(f["validation"])))
        if acc > best_acc:
            best_c, best_acc, best_clf = c, acc, clf
    pred = best_clf.predict(scaler.transform(f["test"]))
    assert m["chosen_c"] == best_c
    assert m["validation"]["accuracy"] == pytest.approx(best_acc, abs=1e-12)
    assert m["accuracy"] == pytest.approx(accuracy_score(y["test"], pred), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(f1_score(y["test"], pred, average="macro"), abs=1e-12)
    assert m["accuracy"] > 0.75  # the keyword task is learnable from frozen random features; chance is 0.5


def test_tied_validation_accuracy_keeps_the_smaller_c():
    from basefuse.probing.probe import choose_c

    curve = [{"C": c, "accuracy": a} for c, a in [(0.01, 0.5), (0.1, 0.8), (1.0, 0.8), (10.0, 0.7)]]
    assert choose_c(curve) == 1
    assert choose_c(list(reversed(curve))) == 2  # by value of C, not by position


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_features_are_the_masked_mean_of_the_last_hidden_states(tiny_bert, isolated_cache, pooling):
    """Pairs too: texts of different lengths (padding in a batch) and a text_pair column, computed by hand."""
    import torch
    from datasets import Dataset
    from transformers import AutoModel, AutoTokenizer

    from basefuse.probing.features import split_features

    texts = ["good w1", "w2 w3 w4 w5 bad w6 w7", "meh", "w8 good w9 w10"]
    pairs = ["w1 w2 w3", "bad", "w4 w5 w6 w7 w8", "good"]
    ds = Dataset.from_dict({"text": texts, "text_pair": pairs, "label": [0, 1, 0, 1]})
    feats, hits = split_features(str(tiny_bert), "sha256:x", "t", {"train": ds}, max_length=16, pooling=pooling,
                                 batch_size=3, device=torch.device("cpu"))
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    net = AutoModel.from_pretrained(tiny_bert).eval()
    expected = []
    for a, b in zip(texts, pairs):  # one example at a time: no padding at all
        enc = tok(a, b, return_tensors="pt", truncation=True, max_length=16)
        with torch.no_grad():
            h = net(**enc).last_hidden_state[0]
        expected.append(h.mean(0) if pooling == "mean" else h[0])
    np.testing.assert_allclose(feats["train"], torch.stack(expected).numpy(), rtol=1e-4, atol=1e-5)
    assert hits == {"train": False}


def test_a_second_probe_runs_no_forward_pass_and_a_bad_cache_file_is_recomputed(tiny_bert, task, isolated_cache,
                                                                                 forward_calls):
    from basefuse.probing.probe import linear_probe

    from basefuse.probing.probe import train_draw

    first = linear_probe(str(tiny_bert), task, config=CFG, seed=0, max_train=100)
    # only the rows the probe uses are run: its 100 drawn train rows, and all of validation and test (60 each)
    assert forward_calls == [100, 60, 60] and not any(first["feature_cache_hits"].values())
    other = ProbeConfig(max_length=16, batch_size=32, c_grid=[0.1, 1.0])  # another seed, grid and budget
    again = linear_probe(str(tiny_bert), task, config=other, seed=1, max_train=150)
    labels = np.asarray(task.train["label"])
    new_rows = set(train_draw(labels, 150, task.name, 1)) - set(train_draw(labels, 100, task.name, 0))
    assert 0 < len(new_rows) < 150
    # another draw runs only the train rows not extracted yet; validation and test come from the cache
    assert forward_calls == [100, 60, 60, len(new_rows)]
    assert again["feature_cache_hits"] == {"train": False, "validation": True, "test": True}
    repeat = linear_probe(str(tiny_bert), task, config=other, seed=1, max_train=150)
    assert len(forward_calls) == 4 and all(repeat["feature_cache_hits"].values())
    assert repeat["accuracy"] == again["accuracy"]
    del forward_calls[3:]

    files = sorted((isolated_cache / "features").glob("test-*.safetensors"))
    assert len(files) == 1
    files[0].write_bytes(b"not a safetensors file")  # corrupt
    third = linear_probe(str(tiny_bert), task, config=CFG, seed=0, max_train=100)
    assert len(forward_calls) == 4 and third["feature_cache_hits"] == {"train": True, "validation": True,
                                                                         "test": False}
    assert third["accuracy"] == first["accuracy"] and third["chosen_c"] == first["chosen_c"]

    # a whole file of another key (copied over) is not trusted either
    val = next((isolated_cache / "features").glob("validation-*.safetensors"))
    val.write_bytes(files[0].read_bytes())
    fourth = linear_probe(str(tiny_bert), task, config=CFG, seed=0, max_train=100)
    assert len(forward_calls) == 5 and fourth["feature_cache_hits"]["validation"] is False
    assert fourth["accuracy"] == first["accuracy"]


def test_cache_refuses_a_file_of_other_texts(tmp_path):
    """Same key, other rows (a tampered or stale file): the stored text hash does not match."""
    from basefuse.probing.features import read_cached, write_cached

    key = {"split": "train", "pooling": "mean", "max_length": 16}
    write_cached(tmp_path / "f.safetensors", key, "hash-a", np.ones((3, 4), np.float32))
    assert read_cached(tmp_path / "f.safetensors", key, 3, "hash-a") is not None
    assert read_cached(tmp_path / "f.safetensors", key, 3, "hash-b") is None
    assert read_cached(tmp_path / "f.safetensors", key | {"pooling": "cls"}, 3, "hash-a") is None
    assert read_cached(tmp_path / "f.safetensors", key, 4, "hash-a") is None
    write_cached(tmp_path / "g.safetensors", key, "hash-a", np.full((3, 4), np.nan, np.float32))
    assert read_cached(tmp_path / "g.safetensors", key, 3, "hash-a") is None


def test_the_seed_draws_the_training_budget_and_the_same_seed_repeats(tiny_bert, task, isolated_cache):
    from basefuse.probing.probe import linear_probe, train_draw

    runs = {s: linear_probe(str(tiny_bert), task, config=CFG, seed=s, max_train=60) for s in (0, 1)}
    again = linear_probe(str(tiny_bert), task, config=CFG, seed=0, max_train=60)
    assert runs[0]["train_draw"]["rows_sha256"] != runs[1]["train_draw"]["rows_sha256"]
    assert runs[0]["validation_curve"] != runs[1]["validation_curve"]  # another sample, another fit
    drop = {"wall_time_s", "cpu_seconds", "feature_seconds", "feature_cache_hits"}
    assert {k: v for k, v in again.items() if k not in drop} == {k: v for k, v in runs[0].items() if k not in drop}
    assert runs[0]["n"]["train"] == 60 and runs[0]["seed_effect"] == "draws the training examples"

    labels = np.asarray(task.train["label"])
    draws = [train_draw(labels, 60, "keyword", s) for s in range(3)]
    for d in draws:  # stratified: class shares of the draw follow train's within one example
        assert len(set(d.tolist())) == 60
        assert abs(int((labels[d] == 1).sum()) - 60 * (labels == 1).mean()) <= 1
    assert len({d.tobytes() for d in draws}) == 3
    assert train_draw(labels, None, "keyword", 5) is None and train_draw(labels, 240, "keyword", 5) is None


def test_without_a_budget_the_seed_changes_nothing_and_says_so(tiny_bert, task, isolated_cache):
    from basefuse.probing.probe import linear_probe

    a = linear_probe(str(tiny_bert), task, config=CFG, seed=0)
    b = linear_probe(str(tiny_bert), task, config=CFG, seed=3)
    assert a["validation_curve"] == b["validation_curve"] and a["accuracy"] == b["accuracy"]
    assert a["seed_effect"].startswith("none") and a["train_draw"] is None and a["n"]["train"] == 240


def test_caps_score_the_rows_finetuning_scores(tiny_bert, task, isolated_cache):
    from basefuse.finetuning.api import _capped
    from basefuse.probing.probe import capped_rows

    rows = capped_rows(len(task.test), 20)
    assert list(task.test.select(rows.tolist())["text"]) == list(_capped(task.test, 20)["text"])
    assert capped_rows(10, None).tolist() == list(range(10))


def _csv_task(tmp_path):
    rows = keyword_rows(300, 7)
    return write_csv(tmp_path / "kw.csv", rows)


def test_probe_job_runs_through_execute_job_in_finetunings_record_format(tiny_bert, tmp_path, isolated_cache):
    from basefuse.data.api import load_task
    from basefuse.experiments.jobs import KINDS, execute_job, make_job, output_complete, read_result

    spec = str(_csv_task(tmp_path))
    planned = load_task(spec, max_train=80).fingerprint
    task = {"name": "kw", "spec": spec, "text_col": "text", "label_col": "label", "pair_col": None,
            "family": "f", "fingerprint": planned}
    params = {"model": {"base": str(tiny_bert)}, "task": task, "max_train": 80,
              "hparams": CFG.model_dump(mode="json"), "seed": 2}
    job = make_job("probe", "probe kw", params)
    summary = execute_job(job.to_dict(), str(tmp_path / "run"))
    record = read_result(tmp_path / "run", job)
    assert RECORD_KEYS <= set(record) and record["evaluation"] == "linear_probe"
    assert record["task_fingerprint"] == planned and record["n"]["train"] == 80 and record["seed"] == 2
    assert record["train_pool_fingerprint"] == load_task(spec).fingerprint
    assert summary == KINDS["probe"].summarise(record) and summary["accuracy"] == record["test"]["accuracy"]
    assert output_complete(tmp_path / "run", job)

    stale = make_job("probe", "probe kw", params | {"task": task | {"fingerprint": "0" * 64}})
    assert not output_complete(tmp_path / "run", stale.__class__(**{**stale.__dict__, "key": job.key}))
    with pytest.raises(BasefuseError, match="changed after the run was planned"):
        execute_job(stale.to_dict(), str(tmp_path / "run"))
    pool = make_job("probe", "probe kw", params | {"task": task | {"pool_fingerprint": "0" * 64}})
    with pytest.raises(BasefuseError, match="changed after the run was planned"):
        execute_job(pool.to_dict(), str(tmp_path / "run"))


def test_cli_probe_end_to_end(tiny_bert, tmp_path, isolated_cache, cli):
    spec = _csv_task(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = cli(["probe", tiny_bert, spec, "--seed", "1", "--max-train", "100", "--out", out,
                             "--max-length", "16", "--json"])
    assert code == 0, err
    printed = json.loads(stdout)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert printed == on_disk and on_disk["seed"] == 1 and on_disk["n"]["train"] == 100
    assert on_disk["hyperparameters"]["max_length"] == 16 and on_disk["hyperparameters"]["max_train"] == 100

    code, stdout, err = cli(["probe", tiny_bert, spec, "--out", out, "--max-length", "16"])
    assert code == 2 and "exists" in err  # no --force: nothing replaced
    code, stdout, err = cli(["probe", tiny_bert, spec, "--out", out, "--force", "--max-length", "16", "--seed", "1",
                             "--max-train", "100"])  # the same draw: every row it uses is cached
    assert code == 0 and "test" in stdout and "features from the cache" in stdout
    code, _, err = cli(["probe", tiny_bert, spec, "--c-grid", "0.1,abc"])
    assert code == 2 and "--c-grid" in err
    code, _, err = cli(["probe", tiny_bert, spec, "--pooling", "max"])
    assert code == 2 and "--pooling" in err


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        ProbeConfig(c_grid=[0.0, 1.0])
    with pytest.raises(ValueError):
        ProbeConfig(unknown=1)
    assert ProbeConfig(c_grid=[10, 0.1]).c_grid == [0.1, 10.0]
    assert ProbeConfig().c_grid == [10.0 ** k for k in range(-3, 4)]


def test_features_of_some_rows_are_those_rows_of_the_whole_split_and_the_cache_grows(tiny_bert, isolated_cache,
                                                                                     forward_calls):
    import torch
    from datasets import Dataset

    from basefuse.probing.features import split_features

    from builders import keyword_rows

    rows = keyword_rows(12, seed=3)
    ds = Dataset.from_dict({"text": [t for t, _ in rows], "label": [0] * 12})
    kw = dict(max_length=16, pooling="mean", batch_size=4, device=torch.device("cpu"))
    whole, _ = split_features(str(tiny_bert), "sha256:whole", "t", {"train": ds}, **kw)
    a, hits_a = split_features(str(tiny_bert), "sha256:rows", "t", {"train": ds}, rows={"train": np.array([9, 2, 5])},
                               **kw)
    b, hits_b = split_features(str(tiny_bert), "sha256:rows", "t", {"train": ds}, rows={"train": np.array([2, 7, 7])},
                               **kw)
    c, hits_c = split_features(str(tiny_bert), "sha256:rows", "t", {"train": ds}, rows={"train": np.array([7, 9])},
                               **kw)
    np.testing.assert_allclose(a["train"], whole["train"][[9, 2, 5]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b["train"], whole["train"][[2, 7, 7]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c["train"], whole["train"][[7, 9]], rtol=1e-5, atol=1e-6)
    # whole split 12 rows, then 3 rows, then only row 7 (2 was cached), then nothing
    assert forward_calls == [12, 3, 1] and hits_c == {"train": True} and hits_a == hits_b == {"train": False}


def test_standardisation_is_fit_on_train_only():
    """Validation from another distribution (shifted, rescaled): the scaler must still be train's mean and std."""
    from basefuse.probing.probe import fit_and_select

    rng = np.random.default_rng(0)
    xt, yt = rng.normal(size=(80, 5)), np.repeat([0, 1], 40)
    xv, yv = 10 + 3 * rng.normal(size=(30, 5)), np.repeat([0, 1], 15)
    scaler, clf, curve, best = fit_and_select(xt, yt, xv, yv, ProbeConfig(c_grid=[0.1, 1.0]))
    np.testing.assert_allclose(scaler.mean_, xt.mean(0), rtol=1e-12)
    np.testing.assert_allclose(scaler.scale_, xt.std(0), rtol=1e-12)  # population std, as StandardScaler
    assert [p["C"] for p in curve] == [0.1, 1.0] and best in (0, 1)
