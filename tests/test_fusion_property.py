"""Streamed fusion equals the independent reference formulas (`fusion_reference.py`), for random shapes, N,
dtypes and every method."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from basefuse.fusion import api, engine
from basefuse.fusion.api import fuse
from basefuse.fusion.methods import METHODS, fuse_arrays
from fusion_reference import reference

# the data-aware methods (fisher, regmean) read per-source statistics: test_fusion_data_methods.py checks them
DATA_FREE = sorted(m for m in METHODS if not METHODS[m].side_inputs)
TORCH = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
PARAMS = {"average": {}, "linear": {}, "task_arithmetic": {"lambda": 0.7}, "ties": {"density": 0.4, "lambda": 0.9},
          "dare_linear": {"density": 0.5, "seed": 3}, "dare_ties": {"density": 0.5, "seed": 1, "normalize": True},
          "model_stock": {},
          "breadcrumbs": {"density": 0.6, "gamma": 0.1, "lambda": 0.8}, "slerp": {"t": 0.3}}


def _write(folder: Path, tensors: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "toy"}))
    return folder


shapes = st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple), min_size=1, max_size=4)


@pytest.mark.parametrize("method", DATA_FREE)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=shapes, n=st.integers(2, 5), dtype=st.sampled_from(sorted(TORCH)), seed=st.integers(0, 2**16),
       chunk=st.integers(1, 11), on_torch=st.booleans())
def test_streamed_equals_naive(method, shapes, n, dtype, seed, chunk, on_torch):
    """Every method, streamed in tiny chunks, equals its reference (float32 within 1e-6). `on_torch` runs the
    arithmetic through the --device cuda code path (torch), here on the CPU."""
    n = 2 if METHODS[method].max_sources == 2 else n  # slerp fuses exactly two
    g = torch.Generator().manual_seed(seed)
    names = [f"w{i}" for i in range(len(shapes))]
    base = {k: torch.randn(s, generator=g).to(TORCH[dtype]) for k, s in zip(names, shapes)}
    srcs = [{k: (v.float() + 0.1 * torch.randn(v.shape, generator=g)).to(TORCH[dtype]) for k, v in base.items()}
            for _ in range(n)]
    weights = (torch.rand(n, generator=g) + 0.1).tolist() if METHODS[method].weights != "ignored" else None
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        bdir = _write(root / "base", base)
        sdirs = [_write(root / f"s{i}", s) for i, s in enumerate(srcs)]
        # tiny chunks so every tensor is split across several steps
        torch_cpu = mock.patch.object(api, "_compute_device", lambda d: "cpu" if on_torch else None)
        with mock.patch.object(engine, "MIN_CHUNK", chunk), mock.patch.object(engine, "CHUNK_BYTES", 4), torch_cpu:
            fuse(sdirs, root / "out", base=bdir, method=method, weights=weights, progress=False, hash_cache=False,
                 allow_unrelated=True, params=PARAMS[method])
        got = load_file(str(root / "out" / "model.safetensors"))
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights) / np.sum(weights)
    for k in names:
        x = np.stack([s[k].float().numpy().reshape(-1) for s in srcs])
        b = base[k].float().numpy().reshape(-1)
        want = torch.from_numpy(reference(method, x, b, w, PARAMS[method], k, base[k].shape)).reshape(base[k].shape)
        assert got[k].dtype == TORCH[dtype] and got[k].shape == base[k].shape
        # the output is rounded once to its dtype: allow one rounding step of it (and float32 sums)
        tol = {"F32": 1e-6, "F16": 2e-3, "BF16": 1.6e-2}[dtype]
        torch.testing.assert_close(got[k].double(), want, atol=tol, rtol=tol)


def test_naive_reference_is_not_trivially_equal():
    """Guard: the reference differs between methods on the same data (so the test above can fail)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 50)).astype(np.float32)
    b = rng.normal(size=50).astype(np.float32)
    w = np.array([0.2, 0.3, 0.5])
    outs = {m: reference(m, x[:2] if m == "slerp" else x, b, w[:2] if m == "slerp" else w, PARAMS[m], "k")
            for m in DATA_FREE}
    for m in DATA_FREE:
        if m != "average":
            assert not np.allclose(outs["average"], outs[m]), m


def test_methods_agree_on_numpy_and_torch():
    """The same method function on numpy arrays and on torch tensors gives the same values."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 300)).astype(np.float32)
    b = rng.normal(size=300).astype(np.float32)
    w = np.array([0.1, 0.2, 0.3, 0.4])
    for name in DATA_FREE:
        m = METHODS[name]
        rows = x[:2] if m.max_sources == 2 else x
        ww = None if m.weights == "ignored" else w[:len(rows)]
        want = fuse_arrays(m, list(rows), b, ww, tensor="k", **PARAMS[name])
        got = fuse_arrays(m, [torch.from_numpy(r) for r in rows], torch.from_numpy(b), ww, tensor="k", **PARAMS[name])
        assert want.dtype == np.float32 and got.dtype == torch.float32, name
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6, err_msg=name)
