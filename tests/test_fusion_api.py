"""The Python API: manifest contents, sha256 and its cache, .bin sources, methods' maths on known values."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import basefuse
from basefuse.checkpoints.hashing import CACHE_NAME
from basefuse.errors import BasefuseError
from basefuse.fusion.api import bare_architecture, fuse
from basefuse.fusion.methods import METHODS, check_params, dare, fuse_arrays, ties
from builders import make_family

pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.fixture(scope="module")
def fam(tmp_path_factory):
    return make_family(tmp_path_factory.mktemp("fam"), 3)


def test_manifest_lists_inputs_heads_and_hashes(tmp_path, fam):
    base, srcs = fam
    m = basefuse.fuse(srcs, tmp_path / "o", base=base, progress=False)
    assert m == json.loads((tmp_path / "o" / "fusion.json").read_text())
    assert [s["name"] for s in m["sources"]] == [str(s) for s in srcs]
    digest = hashlib.sha256((srcs[1] / "model.safetensors").read_bytes()).hexdigest()
    assert m["sources"][1]["sha256"]["model.safetensors"] == digest
    assert digest in (tmp_path / "o" / "README.md").read_text()
    assert m["sources"][2]["head_keys"] == ["classifier.bias", "classifier.weight"]
    assert m["base"]["sha256"]["config.json"]
    assert m["fused_parameters"] > 0 and not m["flagged"]


def test_hash_cache_hit_and_invalidation(tmp_path, fam, isolated_cache, monkeypatch):
    base, srcs = fam
    fuse(srcs, tmp_path / "a", progress=False)
    cache = json.loads((isolated_cache / CACHE_NAME).read_text())
    assert str((srcs[0] / "model.safetensors").resolve()) in cache
    calls = []
    import basefuse.checkpoints.hashing as hashing
    import basefuse.checkpoints.readahead as readahead

    real, real_add = hashing.sha256_file, readahead.ReadAhead.add
    monkeypatch.setattr(hashing, "sha256_file", lambda p, **kw: calls.append(p) or real(p, **kw))
    # weight files are hashed as they are read ahead of the engine, config.json by a thread of its own
    monkeypatch.setattr(readahead.ReadAhead, "add",
                        lambda self, p, digest: (digest and calls.append(p)) or real_add(self, p, digest))
    fuse(srcs, tmp_path / "b", progress=False)
    assert calls == []
    fuse(srcs, tmp_path / "c", progress=False, hash_cache=False)
    assert sorted(p.name for p in calls) == ["config.json"] * 3 + ["model.safetensors"] * 3


def test_bin_source_fuses_like_safetensors(tmp_path, fam):
    base, srcs = fam
    b = tmp_path / "bin"
    b.mkdir()
    shutil.copy(srcs[1] / "config.json", b)
    torch.save(load_file(str(srcs[1] / "model.safetensors")), b / "pytorch_model.bin")
    m1 = fuse([srcs[0], srcs[1]], tmp_path / "x", progress=False)
    m2 = fuse([srcs[0], b], tmp_path / "y", progress=False)
    x, y = load_file(str(tmp_path / "x/model.safetensors")), load_file(str(tmp_path / "y/model.safetensors"))
    assert m1["fused_tensors"] == m2["fused_tensors"]
    for k in x:  # the same finetune, saved in two formats
        torch.testing.assert_close(x[k], y[k])


def test_no_base_output_is_bare_body(tmp_path, fam):
    _, srcs = fam
    fuse(srcs, tmp_path / "o", progress=False)
    cfg = json.loads((tmp_path / "o/config.json").read_text())
    assert cfg["architectures"] == ["BertModel"] and "id2label" not in cfg
    assert all(not k.startswith("bert.") for k in load_file(str(tmp_path / "o/model.safetensors")))


@pytest.mark.parametrize("arch,want", [("BertForSequenceClassification", "BertModel"),
                                       ("GPT2ForSequenceClassification", "GPT2Model"),
                                       ("T5ForConditionalGeneration", "T5Model"), ("BertModel", "BertModel")])
def test_bare_architecture(arch, want):
    assert bare_architecture({"architectures": [arch]}) == [want]


def test_methods_on_known_values():
    x = np.array([[1.0, 2.0, -3.0], [3.0, -2.0, -1.0]], dtype=np.float32)
    b = np.zeros(3, dtype=np.float32)
    w = np.array([0.25, 0.75])
    assert np.allclose(fuse_arrays("average", x), [2.0, 0.0, -2.0])
    assert np.allclose(fuse_arrays("linear", x, None, w), [2.5, -1.0, -1.5])
    assert np.allclose(fuse_arrays("task_arithmetic", x, b, **{"lambda": 0.5}), [2.0, 0.0, -2.0])
    # ties, density 1: sign elected by sum; disjoint mean over agreeing entries
    assert np.allclose(ties(x, b, w, density=1.0), [2.0, 0.0, -2.0])  # a tie in the sign vote keeps the base
    # density 1/3 keeps each row's largest magnitude only: row0 -3 (idx 2), row1 3 (idx 0)
    assert np.allclose(ties(x, b, w, density=1 / 3), [3.0, 0.0, -3.0])
    # dare with p=0 is weighted task arithmetic; with p>0 is reproducible per (seed, key)
    assert np.allclose(dare(x, b, w, p=0.0), fuse_arrays("linear", x, None, w))
    r1, r2 = dare(x, b, w, p=0.5, seed=1, key="k"), dare(x, b, w, p=0.5, seed=1, key="k")
    assert np.array_equal(r1, r2)


def test_param_validation():
    assert check_params(METHODS["ties"], {"k": 20}) == {"density": 0.2}
    with pytest.raises(BasefuseError, match="no parameter 'density'"):
        check_params(METHODS["average"], {"density": 0.1})
    with pytest.raises(BasefuseError, match="'density' must be in"):
        check_params(METHODS["dare_linear"], {"p": 1.0})
    with pytest.raises(BasefuseError, match="unknown method"):
        fuse(["a", "b"], "o", method="nope")


def test_peak_memory_does_not_grow_with_the_sources(tmp_path):
    """Streaming: 4 sources of 96 MB fuse in a process whose peak RSS stays far below their 384 MB."""
    import subprocess
    import sys

    from safetensors.numpy import save_file as save_np

    rng = np.random.default_rng(0)
    body = rng.standard_normal(24 * 1024 * 1024, dtype=np.float32)
    srcs = []
    for i in range(4):
        d = tmp_path / f"s{i}"
        d.mkdir()
        save_np({"w": body + np.float32(1e-3 * (i + 1))}, str(d / "model.safetensors"))
        (d / "config.json").write_text(json.dumps({"model_type": "toy"}))
        srcs.append(str(d))
    del body
    # VmHWM is this process's own peak (ru_maxrss would carry the forking pytest process's peak over exec)
    code = ("import sys; from basefuse.fusion.api import fuse; "
            "fuse(sys.argv[2:], sys.argv[1], progress=False, hash_cache=False); "
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out"), *srcs], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    peak_mb = int(r.stdout.split()[-1]) / 1024
    assert peak_mb < 250, f"peak RSS {peak_mb:.0f} MB: the engine is holding whole sources"


def test_distance_sample_estimates_the_sum_of_squares():
    """engine._sample: contiguous blocks scaled up give the sum of squares of a long vector to within 2 %."""
    from basefuse.fusion import engine

    rng = np.random.default_rng(0)
    v = rng.standard_normal(300_001).astype(np.float32)
    sample, scale = engine._sample(v)
    assert sample.ndim == 2 and sample.size < v.size / 10
    exact = float(np.dot(v.astype(np.float64), v.astype(np.float64)))
    assert engine._sq(sample.astype(np.float64)) * scale == pytest.approx(exact, rel=0.02)
    short = v[:1000]
    s2, k2 = engine._sample(short)
    assert k2 == 1.0 and engine._sq(s2.astype(np.float64)) == pytest.approx(float(np.dot(short, short)), rel=1e-5)
