"""Fixtures of the fault-injection suite: the fast tiny experiment and a clean reference run."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shared fixtures of tests/
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_helpers import clean_results, fast_config, prepared  # noqa: E402


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(root, config dict, config YAML path, plan) of the fast tiny experiment."""
    root = tmp_path_factory.mktemp("faults")
    return prepared(root, fast_config(root))


@pytest.fixture(scope="session")
def clean(tiny):
    """The results of an undisturbed run: what every disturbed run must end with."""
    return clean_results(tiny)
