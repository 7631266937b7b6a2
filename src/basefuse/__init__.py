"""basefuse: fuse finetuned checkpoints into a better base model, and prove it.

The public API is imported lazily so that `import basefuse` stays cheap (the fusion
path must not pay for transformers or datasets start-up):

- `fuse`: fuse finetuned checkpoints (or LoRA adapters) into one base model folder
- `inspect_sources`: task-vector norms, cosines, sign conflicts; flags unrelated sources
- `load_task`: a built-in task, a data file or a hub dataset, split and fingerprinted
- `finetune`, `FinetuneConfig`: finetune a base on a task and test it
- `linear_probe`, `ProbeConfig`: the frozen base's features and a logistic regression
- `run_experiment`, `load_experiment_config`: the whole protocol from a YAML config
- `build_report`: the report of a run
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "fuse": ("basefuse.fusion.api", "fuse"),
    "inspect_sources": ("basefuse.fusion.inspect", "inspect_sources"),
    "load_task": ("basefuse.data.api", "load_task"),
    "finetune": ("basefuse.finetuning.api", "finetune"),
    "FinetuneConfig": ("basefuse.finetuning.config", "FinetuneConfig"),
    "linear_probe": ("basefuse.probing.probe", "linear_probe"),
    "ProbeConfig": ("basefuse.probing.config", "ProbeConfig"),
    "run_experiment": ("basefuse.experiments.runner", "run_experiment"),
    "load_experiment_config": ("basefuse.experiments.config", "load_experiment_config"),
    "build_report": ("basefuse.reports.build", "build_report"),
}

__all__ = ["__version__", *_LAZY]


def __dir__() -> list[str]:
    """The lazy names too, so `dir(basefuse)` and `help(basefuse)` show the API."""
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> Any:
    if name == "inspect":  # the old name shadowed the standard library's module in `from basefuse import *` code
        import warnings

        warnings.warn("basefuse.inspect is renamed basefuse.inspect_sources", DeprecationWarning, stacklevel=2)
        name = "inspect_sources"
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'basefuse' has no attribute {name!r}")
