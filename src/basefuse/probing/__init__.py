"""Linear-probe evaluation of a base: frozen features, a logistic regression on top (issue 18, item 2)."""
from __future__ import annotations

from basefuse.probing.config import ProbeConfig

__all__ = ["ProbeConfig", "linear_probe"]


def __getattr__(name: str):  # probe.py imports torch/sklearn lazily; keep `import basefuse.probing` light
    if name == "linear_probe":
        from basefuse.probing.probe import linear_probe

        return linear_probe
    raise AttributeError(name)
