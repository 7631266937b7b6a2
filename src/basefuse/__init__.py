"""basefuse: fuse finetuned checkpoints into a better base model, and prove it.

The public API is imported lazily so that `import basefuse` stays cheap (the fusion
path must not pay for transformers or datasets start-up).
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "fuse": ("basefuse.fusion.api", "fuse"),
    "inspect": ("basefuse.fusion.inspect", "inspect_sources"),
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'basefuse' has no attribute {name!r}")
