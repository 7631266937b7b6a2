"""Issue 17, tests that miss bugs: `fuse --dtype` converts floating-point tensors only. Integer tensors (position
ids, other buffers) keep their dtype and their exact values, with or without a base."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from basefuse.fusion.api import fuse
from builders import make_family

pytestmark = pytest.mark.usefixtures("isolated_cache")

# Integer buffers added to every checkpoint: values a float16/bfloat16 cast would change (bf16 keeps 8 bits of
# mantissa, so 257 becomes 256; float16 cannot hold 70000 at all) and a negative one.
BUFFERS = {"embeddings.position_ids": torch.arange(300, dtype=torch.int64).unsqueeze(0) + 69_900,
           "embeddings.bucket_ids": torch.tensor([-3, 0, 257, 4099], dtype=torch.int32)}


def add_buffers(folder: Path, prefix: str) -> None:
    path = folder / "model.safetensors"
    tensors = load_file(str(path)) | {prefix + k: v.clone() for k, v in BUFFERS.items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


@pytest.fixture(scope="module")
def family(tmp_path_factory) -> tuple[Path, list[Path]]:
    base, srcs = make_family(tmp_path_factory.mktemp("family"), 2, "bert", labels=(2, 3))
    add_buffers(base, "")  # the base is a bare BertModel: its keys have no prefix
    for src in srcs:
        add_buffers(src, "bert.")
    return base, srcs


@pytest.mark.parametrize("dtype,torch_dtype", [("bfloat16", torch.bfloat16), ("float16", torch.float16)])
@pytest.mark.parametrize("with_base", [True, False])
def test_dtype_converts_floats_and_keeps_integer_tensors_exact(tmp_path, family, dtype, torch_dtype, with_base):
    base, srcs = family
    fuse(srcs, tmp_path / "out", base=base if with_base else None, dtype=dtype, progress=False)
    out = load_file(str(tmp_path / "out" / "model.safetensors"))
    for key, want in BUFFERS.items():
        assert out[key].dtype == want.dtype, key
        assert torch.equal(out[key], want), key
    floats = [t for k, t in out.items() if k not in BUFFERS]
    assert floats and all(t.dtype == torch_dtype for t in floats)
    # config.json says so, under transformers 5's key and the older one (integer buffers do not count)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["dtype"] == config["torch_dtype"] == dtype
