"""`basefuse fuse` end to end: real tiny models of four families, and every bad input of the issue."""
from __future__ import annotations

import errno
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from builders import make_family, save_base, save_finetune

pytestmark = pytest.mark.usefixtures("isolated_cache")


def assert_nothing_written(parent: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{out.name}.tmp")]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    return make_family(root, 3, "bert", labels=(2, 3, 5))


@pytest.mark.parametrize("model_type", ["bert", "roberta", "gpt2", "t5"])
@pytest.mark.parametrize("with_base", [True, False])
def test_end_to_end_loads_with_automodel(tmp_path, cli, model_type, with_base):
    from transformers import AutoModel, AutoModelForSequenceClassification

    base, srcs = make_family(tmp_path, 3, model_type, labels=(2, 3, 4))
    out = tmp_path / "fused"
    args = ["fuse", *srcs, "--out", out, "--no-progress"] + (["--base", base] if with_base else [])
    code, stdout, err = cli(args)
    assert code == 0, err
    assert "wrote" in stdout
    manifest = json.loads((out / "fusion.json").read_text())
    assert manifest["dropped_keys"] and all(d["reason"] == "head" for d in manifest["dropped_keys"])
    assert (out / "README.md").read_text().count("sha256") >= 1
    model, info = AutoModel.from_pretrained(out, output_loading_info=True)
    src_keys = load_file(str(srcs[0] / "model.safetensors")).keys()
    # a pooler no source has (RobertaForSequenceClassification drops it) cannot be fused
    missing = [k for k in info["missing_keys"] if not (k.startswith("pooler.") and not any("pooler" in s for s in src_keys))]
    assert not missing, info
    clf, info = AutoModelForSequenceClassification.from_pretrained(out, num_labels=7, output_loading_info=True)
    body_missing = [k for k in info["missing_keys"] if not any(h in k for h in ("classifier", "score",
                                                                                 "classification_head"))]
    assert not body_missing, body_missing
    # the fused body is the mean of the sources' bodies
    fused = load_file(str(out / "model.safetensors"))
    k = next(k for k in fused if fused[k].dim() == 2)
    src_sd = [load_file(str(s / "model.safetensors")) for s in srcs]
    prefix = next(p for p in ("bert.", "roberta.", "transformer.") if any(x.startswith(p) for x in src_sd[0]))
    want = torch.stack([sd[prefix + k] for sd in src_sd]).mean(0)
    torch.testing.assert_close(fused[k], want)
    if with_base:
        assert (out / "vocab.txt").exists()
        # the base's config, saying which dtype the weights are in under both keys (the sources are float32)
        want_cfg = {**json.loads((base / "config.json").read_text()), "dtype": "float32", "torch_dtype": "float32"}
        assert json.loads((out / "config.json").read_text()) == want_cfg


def test_sharded_output_and_methods(tmp_path, cli, bert):
    from transformers import AutoModel

    base, srcs = bert
    for method, extra in [("ties", ["--k", "30"]), ("dare", ["--p", "0.5", "--seed", "1"]),
                          ("task-arithmetic", ["--lam", "0.5"]), ("weighted", ["--weights", "1,2,3"])]:
        out = tmp_path / method
        code, _, err = cli(["fuse", *srcs, "--base", base, "--out", out, "--method", method, *extra,
                            "--shard-size", "30KB", "--no-progress"])
        assert code == 0, err
        assert (out / "model.safetensors.index.json").exists()
        _, info = AutoModel.from_pretrained(out, output_loading_info=True)
        assert not info["missing_keys"]


def test_dare_is_seeded(tmp_path, cli, bert):
    base, srcs = bert
    outs = []
    for i, seed in enumerate([1, 1, 2]):
        out = tmp_path / f"d{i}"
        assert cli(["fuse", *srcs, "--base", base, "-o", out, "-m", "dare", "--seed", seed, "--no-progress"])[0] == 0
        outs.append(load_file(str(out / "model.safetensors")))
    k = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(outs[0][k], outs[1][k]) and not torch.equal(outs[0][k], outs[2][k])


def test_dtype_and_force(tmp_path, cli, bert):
    base, srcs = bert
    out = tmp_path / "o"
    assert cli(["fuse", *srcs, "-o", out, "--no-progress"])[0] == 0
    code, _, _ = cli(["fuse", *srcs, "-o", out, "--dtype", "bfloat16", "--force", "--no-progress"])
    assert code == 0
    assert all(t.dtype == torch.bfloat16 for t in load_file(str(out / "model.safetensors")).values()
               if t.is_floating_point())


# ---- bad input: one line naming the file/tensor, exit 2, nothing written ----------------------------------

def _bad(tmp_path, cli, args, pattern, exit_code=2):
    out = tmp_path / "out"
    code, _, err = cli(["fuse", *args, "--out", out, "--no-progress"])
    assert code == exit_code, err
    assert err.startswith("basefuse: error: ") and err.count("\n") == 1, err
    import re

    assert re.search(pattern, err), err
    assert_nothing_written(tmp_path, out)
    return err


def test_bad_different_model_types(tmp_path, cli, bert):
    _, srcs = bert
    gbase = save_base(tmp_path / "gbase", "gpt2")
    g = save_finetune(tmp_path / "g", gbase, 2, seed=3)
    _bad(tmp_path, cli, [srcs[0], g], r"g/config.json: model_type 'gpt2' differs")


def test_bad_body_shape_mismatch(tmp_path, cli, bert):
    _, srcs = bert
    big = save_base(tmp_path / "big", "bert", hidden_size=64)  # overrides tiny hidden size
    _bad(tmp_path, cli, [srcs[0], big], r"tensor '.*': shape .* the bodies differ")


def test_bad_missing_shard(tmp_path, cli, bert):
    base, srcs = bert
    ft = save_finetune(tmp_path / "sh", base, 2, seed=9, max_shard_size="20KB")
    shard = sorted(ft.glob("model-*.safetensors"))[0]
    shard.unlink()
    _bad(tmp_path, cli, [srcs[0], ft], rf"{shard.name}: shard listed in model.safetensors.index.json is missing")


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_bad_truncated_or_corrupt(tmp_path, cli, bert, damage):
    _, srcs = bert
    d = tmp_path / "dmg"
    shutil.copytree(srcs[1], d)
    f = d / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:8] + b"#" * 20 + data[28:])
    _bad(tmp_path, cli, [srcs[0], d], r"dmg/model.safetensors: .*(truncated|corrupt)")


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_bad_nan_inf(tmp_path, cli, bert, value):
    _, srcs = bert
    d = tmp_path / "nan"
    shutil.copytree(srcs[1], d)
    sd = load_file(str(d / "model.safetensors"))
    sd["bert.encoder.layer.1.output.dense.weight"][3, 4] = value
    save_file(sd, str(d / "model.safetensors"))
    _bad(tmp_path, cli, [srcs[0], d], r"nan: tensor 'bert.encoder.layer.1.output.dense.weight' contains NaN or Inf")


def test_bad_fewer_than_two_sources(tmp_path, cli, bert):
    _bad(tmp_path, cli, [bert[1][0]], r"at least 2")


@pytest.mark.parametrize("weights", ["1,-1,1", "0,0,0"])
def test_bad_weights(tmp_path, cli, bert, weights):
    _bad(tmp_path, cli, [*bert[1], "--method", "linear", "--weights", weights], r"weights .*(non-negative|sum to 0)")


def test_bad_output_inside_or_equal_source(tmp_path, cli, bert):
    _, srcs = bert
    for out in (srcs[0], srcs[0] / "sub"):
        before = sorted(p.name for p in srcs[0].iterdir())
        code, _, err = cli(["fuse", *srcs, "--out", out, "--no-progress", "--force"])
        assert code == 2 and "overlaps input" in err
        assert sorted(p.name for p in srcs[0].iterdir()) == before


def test_bad_output_exists(tmp_path, cli, bert):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code, _, err = cli(["fuse", *bert[1], "--out", out, "--no-progress"])
    assert code == 2 and "already exists" in err and "--force" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_bad_bin_needs_unpickling(tmp_path, cli, bert):
    _, srcs = bert
    d = tmp_path / "pkl"
    d.mkdir()
    shutil.copy(srcs[1] / "config.json", d)
    sd = load_file(str(srcs[1] / "model.safetensors"))
    sd["extra"] = {"not": "a tensor", "fn": print}
    torch.save(sd, d / "pytorch_model.bin")
    _bad(tmp_path, cli, [srcs[0], d], r"pkl/pytorch_model.bin: needs full unpickling")


def test_bad_unrelated_source(tmp_path, bert, cli):
    base, srcs = bert
    other = save_base(tmp_path / "other_init", "bert", seed=123)  # a different pretraining, same architecture
    _bad(tmp_path, cli, [*srcs, other, "--base", base], r"other_init: .*(relative distance|median).* --allow-unrelated")
    out = tmp_path / "ok"
    code, _, err = cli(["fuse", *srcs, other, "--base", base, "-o", out, "--allow-unrelated", "--no-progress"])
    assert code == 0, err
    assert json.loads((out / "fusion.json").read_text())["flagged"][0]["source"].endswith("other_init")


def test_bad_task_vector_method_without_base(tmp_path, cli, bert):
    _bad(tmp_path, cli, [*bert[1], "--method", "ties"], r"needs --base")


def test_bad_disk_full_leaves_nothing(tmp_path, cli, bert, monkeypatch):
    """The writer's thread hits ENOSPC part-way: the error reaches the CLI and no folder is left; a full disk is a
    runtime failure (exit 1), not bad input."""
    from basefuse.checkpoints import safetensors_io

    real = safetensors_io.write_all
    calls = {"n": 0}

    def full(fd, data):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(safetensors_io, "write_all", full)
    _bad(tmp_path, cli, bert[1], r"No space left on device", exit_code=1)
    assert calls["n"] > 5


def test_bad_unwritable_output(tmp_path, cli, bert):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = cli(["fuse", *bert[1], "--out", blocker / "out", "--no-progress"])
    assert code == 2 and "cannot write" in err
    assert blocker.read_text() == "not a folder"


def test_bad_device(tmp_path, cli, bert):
    _bad(tmp_path, cli, [*bert[1], "--device", "tpu"], r"--device 'tpu' unknown")


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, cli, bert, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _bad(tmp_path, cli, [*bert[1], "--device", "cuda"], r"no CUDA GPU is visible")
