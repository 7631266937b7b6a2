"""The method contract: declarations drive the parameter checks, `--param`, old names, fusion.json, the card, the
README's table and the experiment config; a method is one module."""
from __future__ import annotations

import json
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import basefuse.fusion.methods as methods_pkg
from basefuse.fusion.methods import METHODS
from basefuse.fusion.methods.docs import readme_table

pytestmark = pytest.mark.usefixtures("isolated_cache")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    g = torch.Generator().manual_seed(3)
    base = {"w": torch.randn(8, 5, generator=g)}
    paths = []
    for i, folder in enumerate(["base", "s0", "s1", "s2"]):
        d = root / folder
        d.mkdir()
        t = base if i == 0 else {"w": base["w"] + 0.1 * torch.randn(8, 5, generator=g)}
        save_file(t, str(d / "model.safetensors"))
        (d / "config.json").write_text(json.dumps({"model_type": "toy"}))
        paths.append(str(d))
    return paths[0], paths[1:]


def _one_line_error(cli, args, pattern):
    code, _, err = cli(["fuse", *args, "--no-progress"])
    lines = [line for line in err.splitlines() if not line.startswith("notice: ")]  # old flags' notices may precede
    assert code == 2 and len(lines) == 1 and re.search(pattern, lines[0]), err


def test_inapplicable_and_doubled_parameters_are_one_line_errors(cli, tmp_path, toy):
    base, srcs = toy
    out = ["--out", tmp_path / "o", "--base", base]
    _one_line_error(cli, [*srcs, *out, "-m", "ties", "--density", "0.2", "--k", "20"],
                    r"give 'density' or its old name 'k', not both")
    _one_line_error(cli, [*srcs, *out, "-m", "average", "-P", "lambda=1"],
                    r"method 'average' has no parameter 'lambda'; it takes no parameters")
    _one_line_error(cli, [*srcs, *out, "-m", "ties", "-P", "density=1.5"], r"'density' must be in \(0, 1\]")
    _one_line_error(cli, [*srcs, *out, "-m", "dare_linear", "-P", "seed=0.5"], r"'seed': '0.5' is not an integer")
    _one_line_error(cli, [*srcs, *out, "-m", "ties", "-P", "density"], r"--param 'density': write name=value")
    _one_line_error(cli, [*srcs, *out, "-m", "model_stock", "--weights", "1,2,3"], r"takes no weights")
    _one_line_error(cli, [*srcs, *out, "-m", "slerp"], r"'slerp' fuses exactly 2 sources, got 3")


def test_old_names_still_work_with_a_notice_and_are_recorded_by_new_names(cli, tmp_path, toy):
    base, srcs = toy
    code, _, err = cli(["fuse", *srcs, "--base", base, "-o", tmp_path / "old", "-m", "dare", "--p", "0.3",
                        "--seed", "2", "--no-progress"])
    assert code == 0, err
    assert "method 'dare' is now 'dare_linear'" in err and "'p' is now 'density'" in err
    manifest = json.loads((tmp_path / "old" / "fusion.json").read_text())
    assert manifest["method"] == "dare_linear"
    assert manifest["params"] == {"density": pytest.approx(0.7), "lambda": 1.0, "seed": 2}
    code, _, err = cli(["fuse", *srcs, "--base", base, "-o", tmp_path / "new", "-m", "dare_linear",
                        "-P", "density=0.7,seed=2", "--no-progress"])
    assert code == 0 and "notice" not in err, err
    a, b = (load_file(str(tmp_path / d / "model.safetensors"))["w"] for d in ("old", "new"))
    assert torch.equal(a, b)


def test_fusion_json_and_card_read_the_declaration(cli, tmp_path, toy):
    base, srcs = toy
    code, _, err = cli(["fuse", *srcs, "--base", base, "-o", tmp_path / "o", "-m", "model_stock", "--no-progress"])
    assert code == 0, err
    manifest = json.loads((tmp_path / "o" / "fusion.json").read_text())
    assert manifest["params"] == {"filter_wise": False} and manifest["params_given"] == {}
    card = (tmp_path / "o" / "README.md").read_text()
    assert "`model_stock`" in card and "arXiv:2403.19522" in card


def test_every_method_module_declares_one_registered_method():
    infra = {"contract", "registry", "docs"}
    modules = [m.name for m in pkgutil.iter_modules(methods_pkg.__path__) if m.name not in infra]
    declared = {__import__(f"basefuse.fusion.methods.{m}", fromlist=["METHOD"]).METHOD.name for m in modules}
    assert declared == set(METHODS)


def test_readme_methods_table_is_the_declarations():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_table() in readme, "README's methods table is stale: paste fusion.methods.docs.readme_table()"


def test_experiment_config_validates_against_the_declaration():
    from basefuse.errors import BasefuseError
    from basefuse.experiments.config import FusionSettings

    FusionSettings(method="task-arithmetic", params={"lam": 0.5}).check("fusion")     # old names: still accepted
    FusionSettings(method="model_stock", params={"filter_wise": True}).check("fusion")   # a YAML bool stays one
    for settings, pattern in [(FusionSettings(method="ties", params={"k": 20, "density": 0.3}), "not both"),
                              (FusionSettings(method="average", params={"lambda": 1}), "no parameter 'lambda'"),
                              (FusionSettings(method="slerp"), "at most 2 sources"),
                              (FusionSettings(method="linear"), "needs per-source weights")]:
        with pytest.raises((ValueError, BasefuseError), match=pattern):
            settings.check("fusion")


def test_in_memory_helper_fills_defaults():
    from basefuse.fusion.methods import fuse_arrays

    x = [np.array([1.0, 2.0], np.float32), np.array([3.0, 6.0], np.float32)]
    b = np.zeros(2, np.float32)
    np.testing.assert_allclose(fuse_arrays("task_arithmetic", x, b), 0.3 * (x[0] + x[1]), rtol=1e-6)  # lambda 0.3
