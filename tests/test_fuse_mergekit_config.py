"""`basefuse fuse --config merge.yml`: mergekit configs on tiny models, the fused weights checked against mergekit's
definitions written here (Σ w_i δ_i, ÷ Σ w_i only with normalize; ties' sign election on the weighted sum), and
what basefuse cannot do refused by name."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from fusion_reference import ref_model_stock, ref_slerp

pytestmark = pytest.mark.usefixtures("isolated_cache")
SHAPES = {"layer.weight": (4, 6), "layer.bias": (6,)}


def _write(folder: Path, tensors: dict[str, torch.Tensor]) -> str:
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "toy"}))
    return str(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("mk")
    g = torch.Generator().manual_seed(7)
    base = {k: torch.randn(s, generator=g) for k, s in SHAPES.items()}
    srcs = [{k: v + 0.3 * torch.randn(v.shape, generator=g) for k, v in base.items()} for _ in range(3)]
    paths = [_write(root / f"ft{i}", s) for i, s in enumerate(srcs)]
    flat = {k: (np.stack([s[k].numpy().reshape(-1) for s in srcs]).astype(np.float64),
                base[k].numpy().reshape(-1).astype(np.float64)) for k in SHAPES}
    return _write(root / "base", base), paths, flat


def _fuse(cli, tmp_path, text: str) -> dict[str, np.ndarray]:
    tmp_path.mkdir(exist_ok=True)
    cfg = tmp_path / "merge.yml"
    cfg.write_text(text)
    out = tmp_path / "out"
    code, _, err = cli(["fuse", "--config", cfg, "--out", out, "--no-progress", "--allow-unrelated"])
    assert code == 0, err
    return {k: v.double().numpy().reshape(-1) for k, v in load_file(str(out / "model.safetensors")).items()}


def _models(paths, **per_model) -> str:
    lines = ["models:"]
    for i, p in enumerate(paths):
        lines.append(f"  - model: {p}")
        params = {k: v[i] for k, v in per_model.items()}
        if params:
            lines.append("    parameters:")
            lines += [f"      {k}: {v}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def _check(got, flat, formula):
    for k, (x, b) in flat.items():
        np.testing.assert_allclose(got[k], formula(x, b), atol=1e-6, rtol=1e-6, err_msg=k)


def test_linear_is_the_normalised_weighted_sum(cli, tmp_path, models):
    base, paths, flat = models
    w = np.array([1.0, 2.0, 5.0])
    got = _fuse(cli, tmp_path, "merge_method: linear\n" + _models(paths, weight=w))
    _check(got, flat, lambda x, b: w @ x / w.sum())


@pytest.mark.parametrize("normalize", [False, True])
def test_task_arithmetic_weighs_raw_task_vectors(cli, tmp_path, models, normalize):
    base, paths, flat = models
    w = np.array([0.5, 0.5, 0.5])
    got = _fuse(cli, tmp_path, f"merge_method: task_arithmetic\nbase_model: {base}\nparameters:\n  lambda: 0.8\n"
                f"  normalize: {str(normalize).lower()}\n" + _models(paths, weight=w))
    # mergekit: θ_0 + λ Σ w_i δ_i, divided by Σ w_i with normalize
    _check(got, flat, lambda x, b: b + 0.8 * (w @ (x - b)) / (w.sum() if normalize else 1.0))


def _mergekit_ties(x, b, density, lam):
    """mergekit's ties: keep int(density m) largest |δ| per model, majority sign of Σ δ (>= 0: +), Σ δ·agree /
    count (count 0 -> 1), θ_0 + λ·that (equal weights cancel)."""
    d = x - b
    keep = int(density * d.shape[1])
    trimmed = np.zeros_like(d)
    for i, row in enumerate(d):
        top = np.argsort(-np.abs(row), kind="stable")[:keep]
        trimmed[i, top] = row[top]
    majority = np.where(trimmed.sum(0) >= 0, 1.0, -1.0)
    agree = np.sign(trimmed) == majority
    count = agree.sum(0)
    return b + lam * (trimmed * agree).sum(0) / np.where(count == 0, 1, count)


@pytest.mark.parametrize("density", [None, 0.5])
def test_ties(cli, tmp_path, models, density):
    base, paths, flat = models
    dens = "" if density is None else f"      density: {density}\n"
    text = f"merge_method: ties\nbase_model: {base}\nparameters:\n  lambda: 0.7\nmodels:\n" + "".join(
        f"  - model: {p}\n    parameters:\n      weight: 1.0\n{dens}" for p in paths)
    got = _fuse(cli, tmp_path, text)
    # density·m is whole here (m = 24 and 6), where basefuse's ceil and mergekit's int agree
    _check(got, flat, lambda x, b: _mergekit_ties(x, b, 1.0 if density is None else density, 0.7))


def test_dare_linear_at_density_one_is_weighted_task_arithmetic(cli, tmp_path, models):
    base, paths, flat = models
    w = np.array([1.0, 2.0, 3.0])
    got = _fuse(cli, tmp_path, f"merge_method: dare_linear\nbase_model: {base}\nparameters:\n  lambda: 0.5\n"
                + _models(paths, weight=w, density=[1.0] * 3))
    _check(got, flat, lambda x, b: b + 0.5 * (w @ (x - b)))


@pytest.mark.parametrize("normalize", [False, True])
def test_dare_ties_at_density_one(cli, tmp_path, models, normalize):
    base, paths, flat = models
    w = np.array([1.0, 2.0, 3.0])

    def mergekit_dare_ties(x, b):
        # weighted task vectors, majority sign of their sum (>= 0: +), Σ of the agreeing (÷ their weights)
        wd = w[:, None] * (x - b)
        agree = np.sign(wd) == np.where(wd.sum(0) >= 0, 1.0, -1.0)
        mixed = (wd * agree).sum(0)
        if normalize:
            div = (w[:, None] * agree).sum(0)
            mixed = mixed / np.where(div == 0, 1, div)
        return b + 0.5 * mixed

    got = _fuse(cli, tmp_path, f"merge_method: dare_ties\nbase_model: {base}\nparameters:\n  lambda: 0.5\n"
                f"  normalize: {str(normalize).lower()}\n" + _models(paths, weight=w, density=[1.0] * 3))
    _check(got, flat, mergekit_dare_ties)


def test_breadcrumbs_defaults_and_model_stock(cli, tmp_path, models):
    base, paths, flat = models
    got = _fuse(cli, tmp_path, f"merge_method: breadcrumbs\nbase_model: {base}\n" + _models(paths, weight=[2] * 3))
    _check(got, flat, lambda x, b: b + 2 * (x - b).sum(0))    # mergekit's density default 1: nothing dropped
    got = _fuse(cli, tmp_path / "ms", f"merge_method: model_stock\nbase_model: {base}\n" + _models(paths))
    _check(got, flat, lambda x, b: ref_model_stock(x, b, None))


def test_slerp_from_base_model(cli, tmp_path, models):
    _, paths, flat = models
    got = _fuse(cli, tmp_path, f"merge_method: slerp\nbase_model: {paths[1]}\nparameters:\n  t: 0.3\n"
                + _models(paths[:2]))
    _check(got, flat, lambda x, b: ref_slerp([x[1], x[0]], None, None, t=0.3))   # base_model is t = 0


@pytest.mark.parametrize("text, message", [
    ("merge_method: della\n", r"merge_method 'della' is not supported"),
    ("merge_method: linear\nslices: []\n", r"key 'slices' is not supported"),
    ("merge_method: ties\nBASE\n" + "models:\n  - model: P0\n    parameters: {weight: 1, density: 0.5}\n"
     "  - model: P1\n    parameters: {weight: 1, density: 0.7}\n", r"density differs between models"),
    ("merge_method: ties\nBASE\n" + "models:\n  - model: P0\n    parameters: {weight: 1}\n"
     "  - model: P1\n    parameters: {weight: 2}\n", r"weight differs between models"),
    ("merge_method: linear\nmodels:\n  - model: P0\n    parameters: {weight: [{filter: attn, value: 1}]}\n"
     "  - model: P1\n    parameters: {weight: 1}\n", r"models\[0\]\.parameters\.weight: per-tensor values"),
    ("merge_method: linear\nparameters: {normalize: false}\nmodels:\n  - model: P0\n    parameters: {weight: 1}\n"
     "  - model: P1\n    parameters: {weight: 1}\n", r"normalize false"),
    ("merge_method: task_arithmetic\nBASE\nmodels:\n  - model: P0\n  - model: P1\n",
     r"models\[0\]\.parameters\.weight is missing"),
    ("merge_method: ties\nBASE\nmodels:\n  - model: P0\n    parameters: {weight: 1, t: 1}\n",
     r"parameters\.t is not a per-model parameter"),
])
def test_refused_by_name(cli, tmp_path, models, text, message):
    base, paths, _ = models
    cfg = tmp_path / "merge.yml"
    cfg.write_text(text.replace("BASE", f"base_model: {base}").replace("P0", paths[0]).replace("P1", paths[1]))
    code, _, err = cli(["fuse", "--config", cfg, "--out", tmp_path / "out", "--no-progress"])
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_config_and_command_line_sources_are_not_mixed(cli, tmp_path, models):
    base, paths, _ = models
    cfg = tmp_path / "merge.yml"
    cfg.write_text("merge_method: linear\n" + _models(paths, weight=[1, 1, 1]))
    code, _, err = cli(["fuse", *paths, "--config", cfg, "--out", tmp_path / "out"])
    assert code == 2 and "drop SOURCES" in err
