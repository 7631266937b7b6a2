"""bf16 sources with a bf16 base (the LLM case): the output against torch's own arithmetic, and the distances to the
base (which `average` reads only for them, converting just their sample) against the exact ones computed here."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from basefuse.fusion.api import fuse


def _model(path, tensors):
    path.mkdir()
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({"model_type": "toy"}))
    return path


def test_bf16_average_with_base_equals_torch_and_distances_to_the_base_are_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    base = {"w": (torch.randn(512, 1024, generator=g) * 0.02).to(torch.bfloat16),
            "b": torch.randn(1000, generator=g).to(torch.bfloat16)}      # short: every value in the sample
    scales = (1e-3, 2e-3, 4e-3)
    srcs = [{k: (v.float() + s * torch.randn(v.shape, generator=g)).to(torch.bfloat16) for k, v in base.items()}
            for s in scales]
    bdir = _model(tmp_path / "base", base)
    sdirs = [_model(tmp_path / f"ft{i}", sd) for i, sd in enumerate(srcs)]
    m = fuse(sdirs, tmp_path / "out", base=bdir, progress=False)
    out = load_file(str(tmp_path / "out" / "model.safetensors"))
    for k in base:  # float32 sum in source order, times 1/3, rounded to bf16 by torch
        want = ((srcs[0][k].float() + srcs[1][k].float() + srcs[2][k].float()) * (1.0 / 3)).to(torch.bfloat16)
        assert out[k].dtype == torch.bfloat16 and torch.equal(out[k], want)
    for i, sd in enumerate(srcs):
        exact = float(sum(((sd[k].double() - base[k].double()) ** 2).sum() for k in base)) ** 0.5
        assert m["sources"][i]["distance"] == pytest.approx(exact, rel=0.03)
    ref = float(sum((base[k].double() ** 2).sum() for k in base)) ** 0.5
    assert m["sources"][0]["relative_distance"] == pytest.approx(m["sources"][0]["distance"] / ref, rel=0.03)
    assert np.argsort([s["distance"] for s in m["sources"]]).tolist() == [0, 1, 2]
