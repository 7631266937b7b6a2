"""Fixtures of the fault-injection suite: the fast tiny experiment and a clean reference run."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shared fixtures of tests/
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_helpers import fast_config, results  # noqa: E402

from basefuse.experiments.config import parse_experiment_config  # noqa: E402
from basefuse.experiments.runner import make_plan, run_experiment  # noqa: E402


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(root, config dict, config YAML path, plan) of the fast tiny experiment."""
    root = tmp_path_factory.mktemp("faults")
    data = fast_config(root)
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return root, data, path, make_plan(parse_experiment_config(data))


@pytest.fixture(scope="session")
def clean(tiny):
    """The results of an undisturbed run: what every disturbed run must end with."""
    root, data, _, _ = tiny
    run_experiment(parse_experiment_config(data), root / "clean", progress=False, report=False)
    return results(root / "clean")
