"""The method contract: what a fusion method declares, and the context the engine calls it with.

A method is one module under `basefuse.fusion.methods` that builds one `Method`: its parameters (`Param`), whether it
needs `--base`, how it treats weights, the per-source side inputs it reads and whether it may be computed chunk by
chunk. Everything else (parameter checks, the CLI's `--param`, the experiment config, `fusion.json`, the model card,
the README's table, mergekit configs) reads these declarations; nobody else knows a method by name.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from basefuse.errors import BasefuseError

Rows = np.ndarray | Sequence[np.ndarray]
Weights = Literal["ignored", "optional", "required"]


@dataclass(frozen=True)
class Context:
    """One call of a method: a whole tensor (or, for element-wise methods, a slice of it) across the N sources.

    `x`: the N sources' flat slices in the accumulation dtype, read-only views of the files (never modify them);
    `base`: the base's slice or None; `w`: the normalised weights (N,), summing to 1; `side`: per-source side inputs
    by declared name, each N slices aligned with `x` (e.g. a diagonal Fisher); `start`/`stop`: the slice's element
    range in the flattened tensor. numpy arrays on the CPU path, torch tensors with `--device cuda`.
    """

    name: str
    shape: tuple[int, ...]
    x: Rows
    base: Any
    w: np.ndarray
    start: int = 0
    stop: int | None = None
    side: Mapping[str, Sequence[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Param:
    """One parameter of a method: its checks, CLI text and mergekit name come from here."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None          # bounds; `*_open` excludes the bound itself
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    mergekit: str | None = None       # mergekit's name for the same concept (None: mergekit has none)

    def range_text(self) -> str:
        if self.type is bool:
            return "true/false"
        if self.low is None and self.high is None:
            return "any"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{lo}, {hi}{right}"

    def parse(self, value: Any, method: str) -> Any:
        """The value as this parameter's type, or a one-line error naming method, parameter and range."""
        where = f"method {method!r} parameter {self.name!r}"
        try:
            if self.type is bool:
                v = _as_bool(value)
            elif self.type is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                v = int(value)
            else:
                if isinstance(value, bool):
                    raise ValueError
                v = float(value)
        except (TypeError, ValueError):
            kind = {bool: "true or false", int: "an integer"}.get(self.type, "a number")
            raise BasefuseError(f"{where}: {value!r} is not {kind}") from None
        if self.type is not bool:
            if isinstance(v, float) and not math.isfinite(v):
                raise BasefuseError(f"{where}: {value!r} must be finite")
            too_low = self.low is not None and (v <= self.low if self.low_open else v < self.low)
            too_high = self.high is not None and (v >= self.high if self.high_open else v > self.high)
            if too_low or too_high:
                raise BasefuseError(f"{where} must be in {self.range_text()}, got {value!r}")
        return v


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ValueError


@dataclass(frozen=True)
class Alias:
    """An old parameter name kept for one release: how its value maps onto the new parameter."""

    old: str
    new: str
    convert: Callable[[float], float] = lambda v: v
    note: str = ""


@dataclass(frozen=True)
class Method:
    """A fusion method's declaration. `fuse(ctx, params)` returns the fused flat array for `ctx`."""

    name: str
    fuse: Callable[[Context, Mapping[str, Any]], Any]
    summary: str                        # one line: what it computes
    paper: str                          # where it comes from (model card, README)
    params: tuple[Param, ...] = ()
    needs_base: bool = False
    weights: Weights = "ignored"        # ignored: equal weights only; optional/required: --weights
    side_inputs: tuple[str, ...] = ()   # per-source side inputs it reads (Context.side)
    elementwise: bool = True            # an element's result depends only on that element: may be chunked
    min_sources: int = 2
    max_sources: int | None = None
    mean_without_base: bool = False     # its output is the sources' plain mean (the engine reuses it for distances)
    mergekit: str | None = None         # mergekit's merge_method of the same concept
    aliases: tuple[str, ...] = ()       # old method names, kept for one release
    param_aliases: tuple[Alias, ...] = ()

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


def notice(text: str) -> None:
    """A deprecation notice on stderr (old names still work for one release)."""
    print(f"notice: {text}", file=sys.stderr)


def check_params(method: Method, params: Mapping[str, Any]) -> dict[str, Any]:
    """The given parameters, old names mapped to new ones and each value checked against its declaration.

    Unknown or inapplicable names are a one-line error naming what the method takes. Only the given parameters are
    returned (defaults are filled in by `with_defaults`), so what a user wrote is what is recorded.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        alias = next((a for a in method.param_aliases if a.old == key), None)
        if alias is not None:
            try:
                new_value = alias.convert(float(value))
            except (TypeError, ValueError):
                raise BasefuseError(f"method {method.name!r} parameter {key!r}: {value!r} is not a number") from None
            if alias.new in params or alias.new in out:
                raise BasefuseError(f"method {method.name!r}: give {alias.new!r} or its old name {key!r}, not both")
            notice(f"method {method.name!r}: parameter {key!r} is now {alias.new!r}{alias.note} "
                   f"({key}={value} -> --param {alias.new}={new_value:g}); the old name goes in the next release")
            key, value = alias.new, new_value
        if key not in {p.name for p in method.params}:
            takes = ", ".join(p.name for p in method.params) or "no parameters"
            raise BasefuseError(f"method {method.name!r} has no parameter {key!r}; it takes {takes}")
        out[key] = method.param(key).parse(value, method.name)
    return out


def with_defaults(method: Method, params: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter: the given value or its default."""
    return {**method.defaults(), **params}


def normalise_weights(method: Method, weights: Sequence[float] | None, n: int) -> np.ndarray:
    """Weights must be non-negative with a positive sum; they are scaled to sum to 1."""
    if weights is None:
        if method.weights == "required":
            raise BasefuseError(f"method {method.name!r} needs --weights, one per source")
        return np.full(n, 1.0 / n)
    if method.weights == "ignored":
        users = ", ".join(_weighted_methods()) or "none"
        raise BasefuseError(f"method {method.name!r} takes no weights; use one that does: {users}")
    if len(weights) != n:
        raise BasefuseError(f"got {len(weights)} weights for {n} sources: give one weight per source")
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise BasefuseError(f"weights {list(weights)} must be finite and non-negative")
    if w.sum() <= 0:
        raise BasefuseError(f"weights {list(weights)} sum to 0: give at least one positive weight")
    return w / w.sum()


def _weighted_methods() -> list[str]:
    from basefuse.fusion.methods.registry import METHODS

    return [m.name for m in METHODS.values() if m.weights != "ignored"]


def check_sources(method: Method, n: int) -> None:
    if n < method.min_sources or (method.max_sources is not None and n > method.max_sources):
        want = (f"exactly {method.min_sources}" if method.max_sources == method.min_sources
                else f"at least {method.min_sources}")
        raise BasefuseError(f"method {method.name!r} fuses {want} sources, got {n}")
