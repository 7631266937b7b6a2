"""Issue 17, items 3 and 6-12 and its "Low" list: one test per defect, each failing with its fix undone.

Expected values are worked out by hand from the small inputs each test writes.
"""
from __future__ import annotations

import errno
import json
import struct
import time
from pathlib import Path

import pytest
import yaml

from basefuse.errors import BasefuseError
from builders import keyword_rows, make_family, make_tiny_experiment, save_base, save_finetune, write_csv


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> tuple[Path, dict]:
    """The tiny experiment's base and CSV files, built once; tests copy the config dict and change it."""
    root = tmp_path_factory.mktemp("red-team-17")
    return root, make_tiny_experiment(root)


def _cfg(data: dict):
    from basefuse.experiments.config import parse_experiment_config

    return parse_experiment_config(data)


# ---- item 3: the data a job loads is the data its key was planned with -------------------------------------

def test_item3_job_refuses_data_replaced_after_planning(tiny_root, tmp_path):
    """The source CSV is replaced after the plan was made: its finetune fails before training, naming the task."""
    import shutil

    from basefuse.experiments.jobs import execute_job
    from basefuse.experiments.runner import make_plan

    root, data = tiny_root
    csv = tmp_path / "y1.csv"
    shutil.copy(root / "data" / "y1.csv", csv)
    families = dict(data["families"])
    families["y"] = [{"name": "y1", "spec": str(csv)}] + families["y"][1:]
    plan = make_plan(_cfg(data | {"families": families}))
    job = plan.source_jobs()["y1"]
    write_csv(csv, keyword_rows(240, seed=999))  # other rows, same file name
    with pytest.raises(BasefuseError, match=r"task y1: its data \(.*y1\.csv\) changed after the run was planned"):
        execute_job(job.to_dict(), run_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run" / "jobs" / job.key).exists()


def test_item3_rerun_never_reuses_a_job_recorded_with_other_data(tiny_root, tmp_path):
    """A finished finetune whose metrics.json records another data fingerprint is not done: it runs again."""
    from basefuse.experiments.jobs import job_dir, output_complete
    from basefuse.experiments.runner import make_plan

    _, data = tiny_root
    plan = make_plan(_cfg(data))
    job = next(iter(plan.target_jobs().values()))  # save: false, so metrics.json alone completes it
    out = job_dir(tmp_path, job.key)
    out.mkdir(parents=True)
    planned = job.params["task"]["fingerprint"]
    (out / "metrics.json").write_text(json.dumps({"task_fingerprint": "0" * 64, "accuracy": 0.5}))
    assert not output_complete(tmp_path, job)
    (out / "metrics.json").write_text(json.dumps({"task_fingerprint": planned, "accuracy": 0.5}))
    assert output_complete(tmp_path, job)


# ---- item 6: CSV labels are strings ------------------------------------------------------------------------

def _label_rows(labels: list[str], n_each: int = 20) -> list[tuple[str, str]]:
    return [(f"w{i} w{j} text", y) for j, y in enumerate(labels) for i in range(n_each)]


def test_item6_csv_labels_are_strings(tmp_path):
    """'1.1' and '1.10' are two classes in CSV (as in JSON Lines), not the one number 1.1."""
    from basefuse.data.api import load_task

    rows = _label_rows(["1.1", "1.10", "1.2"])
    csv_task = load_task(str(write_csv(tmp_path / "t.csv", rows)))
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    assert csv_task.label_names == ["1.1", "1.10", "1.2"]  # three classes, sorted as strings
    assert load_task(str(jsonl)).label_names == csv_task.label_names


def test_item6_integer_csv_labels_keep_numeric_order(tmp_path):
    """Integer labels read as strings still sort as numbers ('2' before '10'), as they did when parsed as ints."""
    from basefuse.data.api import load_task

    task = load_task(str(write_csv(tmp_path / "t.csv", _label_rows(["10", "2", "-1"]))))
    assert task.label_names == ["-1", "2", "10"]


# ---- item 7: one huge cell is cut before tokenizing ---------------------------------------------------------

def test_item7_huge_text_cell_is_tokenized_fast(tiny_bert):
    """An 8 MB cell: encoding takes well under a second (the whole cell took ~10 s) and gives the same ids as
    its first words (truncation to max_length keeps only those)."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from basefuse.finetuning.loop import encode

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    huge = "good w1 w2 w3 " * 600_000  # 8.4 MB
    ds = Dataset.from_dict({"text": [huge, "bad w4"], "label": [1, 0]})
    t0 = time.perf_counter()
    enc = encode(tok, ds, max_length=16)
    assert time.perf_counter() - t0 < 2.0
    short = encode(tok, Dataset.from_dict({"text": ["good w1 w2 w3 " * 10, "bad w4"], "label": [1, 0]}), 16)
    assert enc.lengths.tolist() == [16, 4]  # [CLS] + 14 words + [SEP]; [CLS] bad w4 [SEP]
    assert (enc.features["input_ids"] == short.features["input_ids"]).all()


# ---- item 8: report --force never replaces the run's own files, base or data -------------------------------

def test_item8_report_force_refuses_run_jobs_base_and_data(tmp_path, cli):
    from test_report_build import write_run

    run = write_run(tmp_path)
    base = save_base(tmp_path / "base")
    (tmp_path / "data").mkdir()
    data = write_csv(tmp_path / "data" / "x1.csv", keyword_rows(10, 0)).parent
    (run / "experiment.yaml").write_text(yaml.safe_dump({"base_model": str(base), "seeds": [0, 1],
                                                         "weight_decays": [0.0, 0.01],
                                                         "families": {"x": [{"name": "x1", "spec": str(data)}]}}))
    (run / "jobs" / "k1").mkdir(parents=True)
    (run / "jobs" / "k1" / "metrics.json").write_text("{}")
    (run / "store.jsonl").write_text("")
    from basefuse.io import cache_dir

    for out in (run / "jobs", run / "jobs" / "k1" / "report", run, base, data, cache_dir()):
        code, _, err = cli(["report", str(run), "--out", str(out), "--force"])
        assert code == 2 and "overlaps input" in err and err.count("\n") == 1, (out, err)
    assert (run / "jobs" / "k1" / "metrics.json").read_text() == "{}"
    assert (base / "config.json").exists() and (data / "x1.csv").exists()
    code, _, err = cli(["report", str(run), "--out", str(tmp_path / "elsewhere"), "--force"])
    assert code == 0, err


# ---- item 9: an experiment's own sources are not refused as outliers ---------------------------------------

def _fuse_job(run_dir: Path, base: Path, noises: list[float], **extra) -> dict:
    keys = []
    for i, noise in enumerate(noises):
        key = f"src{i}"
        save_finetune(run_dir / "jobs" / key / "model", base, num_labels=2, seed=i + 1, noise=noise)
        keys.append(key)
    params = {"sources": [{"job": k, "kind": "finetune"} for k in keys], "base": {"base": str(base)},
              "method": "average", "method_params": {}} | extra
    return {"kind": "fuse", "label": "fuse", "params": params, "deps": keys, "key": "fused"}


def test_item9_experiment_fuses_its_own_sources_despite_a_distance_outlier(tmp_path):
    """Three finetunes of the base, one moved 30x further (it trained longer): `fuse` of unknown sources flags it,
    an experiment's fuse job does not (the outlier rule says nothing about its own finetunes)."""
    from basefuse.experiments.jobs import execute_job
    from basefuse.fusion.api import fuse

    base = save_base(tmp_path / "base")
    run = tmp_path / "run"
    job = _fuse_job(run, base, [1e-4, 1e-4, 3e-3])
    srcs = [run / "jobs" / f"src{i}" / "model" for i in range(3)]
    with pytest.raises(BasefuseError, match=r"source \S*/src2/model: distance \S+ is over 10x the median"):
        fuse(srcs, tmp_path / "plain", base=base, progress=False)
    assert execute_job(job, run_dir=str(run))["n_sources"] == 3


def test_item9_allow_unrelated_in_the_config_reaches_the_fuse_job(tiny_root, tmp_path):
    """`fusion: {allow_unrelated: true}` is threaded into the fuse jobs; left out, keys and fingerprint are as
    before (no allow_unrelated in any job), and an unrelated source is still refused without it."""
    from basefuse.experiments.jobs import execute_job
    from basefuse.experiments.runner import make_plan

    _, data = tiny_root
    default = _cfg(data)
    allowed = _cfg(data | {"fusion": {"method": "average", "allow_unrelated": True}})
    assert default.fingerprint() == _cfg(data | {"fusion": {"method": "average"}}).fingerprint()
    assert allowed.fingerprint() != default.fingerprint()
    assert all("allow_unrelated" not in j.params for j in make_plan(default).fuse_jobs().values())
    assert all(j.params["allow_unrelated"] is True for j in make_plan(allowed).fuse_jobs().values())
    base = save_base(tmp_path / "base")
    job = _fuse_job(tmp_path / "run", base, [1e-4, 0.5])  # src1 moved as far as the base is large
    with pytest.raises(BasefuseError, match="relative distance"):
        execute_job(job, run_dir=str(tmp_path / "run"))
    job["params"]["allow_unrelated"] = True
    assert execute_job(job, run_dir=str(tmp_path / "run"))["n_sources"] == 2


# ---- item 10: one bad byte in a UTF-8 CSV is an error, not latin-1 --------------------------------------------

def test_item10_one_invalid_byte_in_utf8_csv_is_refused(tmp_path):
    from basefuse.data.api import load_task

    good = "".join(f"bád w{i},{'yes' if i % 2 else 'no'}\n" for i in range(40)).encode("utf-8")
    path = tmp_path / "t.csv"
    head = b"text,label\n"
    path.write_bytes(head + good[:30] + b"\xff" + good[30:])
    with pytest.raises(BasefuseError, match=rf"t\.csv: invalid UTF-8 byte 0xff at byte offset {len(head) + 30}"):
        load_task(str(path))
    path.write_bytes(head + "".join(f"b\xe1d w{i},{'yes' if i % 2 else 'no'}\n" for i in range(40)).encode("latin-1"))
    task = load_task(str(path))  # a real latin-1 file (no UTF-8 anywhere) still reads as latin-1
    assert task.extra["encoding"] == "latin-1" and task.train[0]["text"].startswith("bád")


# ---- item 11: a YAML key given twice is refused --------------------------------------------------------------

@pytest.mark.parametrize("text, key, line, first", [
    ("families:\n  x: [a, b]\n  x: [c, d]\nseeds: [0]\n", "x", 3, 2),
    ("families:\n  x: [a, b]\nseeds: [0, 1]\nseeds: [2]\n", "seeds", 4, 3),
])
def test_item11_duplicate_yaml_keys_refused(tmp_path, text, key, line, first):
    from basefuse.experiments.config import load_experiment_config

    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(BasefuseError) as e:
        load_experiment_config(path)
    assert str(e.value) == (f"{path}: line {line}: key {key!r} is given twice (first on line {first}): keep one "
                            "(merge the two lists if both are wanted)")


def test_item11_yaml_merge_keys_may_still_override(tmp_path):
    from basefuse.experiments.config import load_experiment_config

    path = tmp_path / "c.yaml"
    path.write_text("families: {x: [a, b]}\nfinetune: &hp {learning_rate: 0.1, batch_size: 8}\n"
                    "source_finetune: {<<: *hp, batch_size: 4}\n")
    assert load_experiment_config(path).source_finetune.batch_size == 4


# ---- item 12: a full disk is one line, exit 1, naming what failed --------------------------------------------

def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_item12_disk_full_at_plan_json_is_one_line_exit_1(tiny_root, tmp_path, cli, monkeypatch):
    from basefuse.experiments import plan_record

    _, data = tiny_root
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    monkeypatch.setattr(plan_record, "write_json", _enospc)
    code, _, err = cli(["experiment", str(config), "--out", str(run)])
    assert code == 1, err
    assert err == f"basefuse: error: cannot write {run / 'plan.json'}: No space left on device; free space (or " \
                  "choose another --out) and rerun (no job has run yet)\n"
    assert not (run / "plan.json").exists() and not [p for p in run.iterdir() if ".tmp-" in p.name]


def test_item12_disk_full_later_names_the_failed_job_and_exits_1(tiny_root, tmp_path, cli, monkeypatch):
    """The second target finetune cannot write its output, then the report cannot be written: exit 1, the failed
    job is named with its key, and the report's error follows."""
    from basefuse.finetuning import api
    from basefuse.reports import build

    _, data = tiny_root
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data | {"conditions": ["pretrained"], "seeds": [0, 1]}))
    run = tmp_path / "run"
    real, calls = api.write_json, {"n": 0}

    def second_fails(*args, **kwargs):
        calls["n"] += 1
        return _enospc() if calls["n"] == 2 else real(*args, **kwargs)

    monkeypatch.setattr(api, "write_json", second_fails)
    monkeypatch.setattr(build, "write_json", _enospc)
    code, _, err = cli(["experiment", str(config), "--out", str(run)])
    assert code == 1, err
    failed = json.loads((run / "failures.json").read_text())["failed"]
    assert len(failed) == 1
    assert f"(job {failed[0]['key']})" in err and f"failed: {failed[0]['label']}: cannot write output" in err
    assert f"basefuse: error: no report: cannot write output {run / 'report'}: No space left on device" in err
    assert not (run / "report").exists()


# ---- Low ---------------------------------------------------------------------------------------------------

def test_low_seeds_bool_refused(tiny_root):
    _, data = tiny_root
    with pytest.raises(BasefuseError, match="seeds.0: true is a boolean, not a seed"):
        _cfg(data | {"seeds": [True, 2]})


def test_low_targets_duplicates_refused(tiny_root):
    _, data = tiny_root
    with pytest.raises(BasefuseError, match=r"targets: has duplicates: \['x1', 'x1'\]"):
        _cfg(data | {"targets": ["x1", "x1"]})


def test_low_conditions_empty_refused(tiny_root):
    _, data = tiny_root
    with pytest.raises(BasefuseError, match="conditions: must list at least one value"):
        _cfg(data | {"conditions": []})


def test_low_primary_that_no_job_makes_refused(tiny_root):
    from basefuse.experiments.runner import make_plan

    _, data = tiny_root
    cfg = _cfg(data | {"conditions": ["pretrained", "fused"], "fused_groups": ["all"],
                       "primary": ["fused (x)", "pretrained"]})
    with pytest.raises(BasefuseError) as e:
        make_plan(cfg)
    assert str(e.value) == "primary: no base is labelled 'fused (x)' in this experiment; valid labels: " \
                           "fused (all), pretrained"
    cfg = _cfg(data | {"conditions": ["pretrained", "fused"], "fused_groups": ["all"],
                       "confirmatory": {"fused": "fused (al)"}})
    with pytest.raises(BasefuseError, match=r"^confirmatory.fused: no base is labelled 'fused \(al\)'"):
        make_plan(cfg)


def test_low_refused_config_leaves_no_run_folder(tiny_root, tmp_path):
    from basefuse.experiments.runner import run_experiment

    _, data = tiny_root
    run = tmp_path / "run"
    with pytest.raises(BasefuseError, match="primary"):
        run_experiment(_cfg(data | {"primary": ["nope", "pretrained"]}), run, progress=False)
    assert not run.exists()
    run.mkdir()  # an empty folder the user made stays, empty
    with pytest.raises(BasefuseError, match="primary"):
        run_experiment(_cfg(data | {"primary": ["nope", "pretrained"]}), run, progress=False)
    assert run.is_dir() and list(run.iterdir()) == []


def test_low_inspect_flags_nan_source_and_exits_non_zero(tmp_path, cli):
    from safetensors.numpy import load_file, save_file

    base, srcs = make_family(tmp_path, n=3)
    f = srcs[1] / "model.safetensors"
    tensors = load_file(str(f))
    key = next(k for k in sorted(tensors) if k.endswith("query.weight"))
    tensors[key][0, 0] = float("nan")
    save_file(tensors, str(f), metadata={"format": "pt"})
    code, out, err = cli(["inspect", *map(str, srcs), "--base", str(base), "--json"])
    assert code == 2, err
    stats = json.loads(out)
    assert stats["non_finite"] == [{"model": str(srcs[1]), "tensor": key}]
    assert stats["flagged"][0]["source"] == str(srcs[1]) and "NaN or Inf" in stats["flagged"][0]["reason"]
    assert err == f"basefuse: error: 1 model(s) hold NaN or Inf values, e.g. {srcs[1]} in tensor {key!r}: do " \
                  "not fuse them; retrain or re-save them\n"


def test_low_shard_size_under_one_byte_says_so():
    from basefuse.cli.fuse_cmd import parse_size

    with pytest.raises(BasefuseError, match=r"--shard-size '0.5B' is under one byte"):
        parse_size("0.5B")
    assert parse_size("1.5KB") == 1500 and parse_size("0.5KiB") == 512


def test_low_tokenizer_without_ids_is_one_clear_error():
    from datasets import Dataset

    from basefuse.finetuning.loop import encode

    class Empty:
        pad_token_id = 0

        def __call__(self, texts, pairs=None, **_):
            return {"input_ids": [[] for _ in texts]}

    ds = Dataset.from_dict({"text": ["héllo", "wörld"], "label": [0, 1]})
    with pytest.raises(BasefuseError, match=r"tokenizer \(Empty\) turns every text into no token ids"):
        encode(Empty(), ds, max_length=16)


def test_low_report_early_in_a_live_run_says_in_progress(tmp_path, cli):
    from basefuse.experiments.rundir import own_run_dir

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "plan.json").write_text('{"runs": [], "jobs": []}')
    with own_run_dir(run):  # an experiment holds the folder
        code, _, err = cli(["report", str(run), "--out", str(tmp_path / "elsewhere")])
    assert code == 2 and "is a run in progress with no results yet" in err and "experiment` first" not in err
    code, _, err = cli(["report", str(run), "--out", str(tmp_path / "elsewhere")])
    assert code == 2 and "is a run with no results yet" in err, err
    assert not (tmp_path / "elsewhere").exists()


def test_low_safetensors_dtype_shape_mismatch_is_named(tmp_path):
    from basefuse.checkpoints.safetensors_io import read_header

    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    with pytest.raises(BasefuseError, match=r"tensor 'w': its dtype F32 and shape \[2, 2\] need 16 bytes but its "
                                            r"data offsets span 8 \(dtype/shape mismatch"):
        read_header(path)
