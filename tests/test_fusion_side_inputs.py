"""Per-source side inputs (e.g. a diagonal Fisher per source) reach a method through the engine's Context, sliced
like the sources' chunks: a Fisher-weighted mean declared here, in the shape the data-aware methods will take."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from basefuse.checkpoints.align import align
from basefuse.checkpoints.source import load_checkpoint
from basefuse.fusion import engine
from basefuse.fusion.methods.contract import Context, Method


def _fisher_mean(ctx: Context, params) -> np.ndarray:
    f = ctx.side["fisher"]
    num = f[0] * ctx.x[0]
    den = f[0] * 1.0
    for fi, xi in zip(f[1:], ctx.x[1:]):
        num += fi * xi
        den += fi
    return num / den


TOY = Method("toy_fisher", _fisher_mean, "Σ F_i θ_i / Σ F_i", "test", side_inputs=("fisher",))


def _write(folder: Path, tensors) -> str:
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "toy"}))
    return str(folder)


def test_side_inputs_are_sliced_with_the_sources(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    shapes = {"a": (5, 7), "b": (11,)}
    srcs = [{k: torch.randn(s, generator=g) for k, s in shapes.items()} for _ in range(3)]
    fishers = [{k: torch.rand(s, generator=g) + 0.05 for k, s in shapes.items()} for _ in range(3)]
    cks = [load_checkpoint(_write(tmp_path / f"s{i}", s)) for i, s in enumerate(srcs)]
    side = [load_checkpoint(_write(tmp_path / f"f{i}", f)) for i, f in enumerate(fishers)]
    al = align(cks, None)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(engine, "MIN_CHUNK", 4)      # every tensor in several chunks
    monkeypatch.setattr(engine, "CHUNK_BYTES", 4)
    job = engine.FusionJob(sources=cks, base=None, alignment=al, items=engine.plan(cks, None, al, None), method=TOY,
                           weights=np.full(3, 1 / 3), params={}, out_dir=out, side={"fisher": side})
    engine.run(job)
    got = load_file(str(out / "model.safetensors"))
    for k in shapes:
        f = np.stack([fi[k].double().numpy() for fi in fishers])
        x = np.stack([s[k].double().numpy() for s in srcs])
        np.testing.assert_allclose(got[k].double().numpy(), (f * x).sum(0) / f.sum(0), rtol=1e-6, atol=1e-6)
    for c in cks + side:
        c.close()
