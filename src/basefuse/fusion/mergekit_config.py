"""mergekit's YAML (`basefuse fuse --config merge.yml`): read with mergekit's meaning of each key, or refused by name.

mergekit's task-vector methods weigh raw task vectors (`Σ w_i δ_i`, divided by `Σ w_i` only with `normalize`),
while basefuse scales weights to sum 1: the translation folds the weights' sum into `lambda`, so the fused weights
are mergekit's. What basefuse computes differently from mergekit is listed in `DIFFERENCES` (and the README).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from basefuse.errors import BasefuseError

# mergekit merge_method -> (basefuse method, mergekit's defaults of its global parameters)
SUPPORTED: dict[str, tuple[str, dict[str, Any]]] = {
    "linear": ("linear", {"normalize": True}),
    "task_arithmetic": ("task_arithmetic", {"normalize": False, "lambda": 1.0}),
    "ties": ("ties", {"normalize": True, "lambda": 1.0}),
    "dare_linear": ("dare_linear", {"normalize": False, "lambda": 1.0, "rescale": True}),
    "dare_ties": ("dare_ties", {"normalize": False, "lambda": 1.0, "rescale": True}),
    "breadcrumbs": ("breadcrumbs", {"normalize": False, "lambda": 1.0}),
    "model_stock": ("model_stock", {"filter_wise": False}),
    "slerp": ("slerp", {}),
}
# per-model (tensor) parameters of each mergekit method, with mergekit's defaults (None: required)
TENSOR_PARAMS: dict[str, dict[str, Any]] = {
    "linear": {"weight": None},
    "task_arithmetic": {"weight": None},
    "ties": {"weight": None, "density": 1.0},
    "dare_linear": {"weight": None, "density": 1.0},
    "dare_ties": {"weight": None, "density": 1.0},
    "breadcrumbs": {"weight": None, "density": 1.0, "gamma": 0.01},
    "model_stock": {},
    "slerp": {},
}
GLOBAL_ONLY = {"normalize", "lambda", "rescale", "int8_mask", "filter_wise", "t"}
TOP_KEYS = {"merge_method", "models", "base_model", "parameters", "dtype", "out_dtype"}
DIFFERENCES = {
    "ties": "keeps ceil(density·m) entries per task vector (mergekit int(density·m)) and leaves an entry whose "
            "elected sign is 0 at the base (mergekit elects +)",
    "dare_linear": "rescales kept entries by 1/density as in the DARE paper (mergekit matches the L1 norm) and "
                   "draws the mask from (seed, tensor name), so a run is reproducible (mergekit's is not)",
    "dare_ties": "drops and rescales as dare_linear does",
    "breadcrumbs": "keeps the entries ranked [n_bot, m − n_top) also when n_top is 0 (mergekit's slice then keeps "
                   "none)",
}


@dataclass(frozen=True)
class FuseRequest:
    """What `fuse(...)` needs, read from a mergekit config."""

    sources: list[str]
    method: str
    base: str | None = None
    weights: list[float] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    dtype: str | None = None


def read_mergekit_config(path: str | Path) -> FuseRequest:
    """Load the YAML file and translate it (see `from_mergekit`)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise BasefuseError(f"--config {path}: cannot read it ({e})") from None
    except yaml.YAMLError as e:
        raise BasefuseError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return from_mergekit(data, str(path))


def _model_name(entry: Any, where: str) -> str:
    model = entry.get("model") if isinstance(entry, dict) else None
    if not isinstance(model, str) or not model:
        raise BasefuseError(f"{where}.model: give a model folder or hub id (a string)")
    if "+" in model:
        raise BasefuseError(f"{where}.model {model!r}: a LoRA applied on the fly (model+lora) is not supported; "
                            "merge the adapter into a folder first")
    return model


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, (list, dict)):
        raise BasefuseError(f"{where}: per-tensor values (a list of filters or gradients) are not supported; give "
                            "one value")
    return value


def from_mergekit(data: Any, where: str = "config") -> FuseRequest:
    """A mergekit config as a basefuse fusion with the same fused weights, or a one-line error naming the key."""
    if not isinstance(data, dict):
        raise BasefuseError(f"{where}: expected a mapping with merge_method and models")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise BasefuseError(f"{where}: key {unknown[0]!r} is not supported by basefuse fuse --config (it reads "
                            f"{', '.join(sorted(TOP_KEYS))})")
    mk = data.get("merge_method")
    if mk not in SUPPORTED:
        raise BasefuseError(f"{where}: merge_method {mk!r} is not supported; basefuse reads "
                            f"{', '.join(SUPPORTED)}")
    method, defaults = SUPPORTED[mk]
    top = data.get("parameters") or {}
    if not isinstance(top, dict):
        raise BasefuseError(f"{where}: parameters must be a mapping")
    tensor_defaults = TENSOR_PARAMS[mk]
    allowed_top = set(defaults) | {"int8_mask"} | set(tensor_defaults) | ({"t"} if mk == "slerp" else set())
    for key in top:
        if key not in allowed_top:
            raise BasefuseError(f"{where}: parameters.{key} is not a parameter of mergekit's {mk}")
    glob = {**defaults, **{k: _scalar(v, f"{where}: parameters.{k}") for k, v in top.items()
                           if k in defaults or k in ("t", "int8_mask")}}
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise BasefuseError(f"{where}: models must be a non-empty list of {{model: ...}}")
    names, per_model = [], []
    for i, entry in enumerate(models):
        w = f"{where}: models[{i}]"
        names.append(_model_name(entry, w))
        given = entry.get("parameters") or {}
        for key in given:
            if key in GLOBAL_ONLY or key not in tensor_defaults:
                raise BasefuseError(f"{w}.parameters.{key} is not a per-model parameter of mergekit's {mk}")
        vals = {}
        for key, default in tensor_defaults.items():
            v = given.get(key, top.get(key, default))
            if v is None:
                raise BasefuseError(f"{w}.parameters.{key} is missing (mergekit's {mk} requires it)")
            vals[key] = _scalar(v, f"{w}.parameters.{key}")
        per_model.append(vals)
    base = data.get("base_model")
    if base is not None and not isinstance(base, str):
        base = _model_name(base, f"{where}: base_model") if isinstance(base, dict) else None
    if base in names and mk != "slerp":
        raise BasefuseError(f"{where}: base_model {base!r} is also listed in models; list only the finetunes")
    dtype = data.get("out_dtype") or data.get("dtype")
    return _translate(mk, method, names, per_model, glob, base, dtype, where)


def _same(values: list[Any], what: str, where: str, hint: str) -> Any:
    if len(set(values)) > 1:
        raise BasefuseError(f"{where}: {what} differs between models ({values}); {hint}")
    return values[0]


def _translate(mk: str, method: str, names: list[str], per_model: list[dict[str, Any]], glob: dict[str, Any],
               base: str | None, dtype: str | None, where: str) -> FuseRequest:
    weights = [float(m["weight"]) for m in per_model] if per_model and "weight" in per_model[0] else None
    params: dict[str, Any] = {}
    if "density" in (per_model[0] if per_model else {}):
        params["density"] = float(_same([m["density"] for m in per_model], "density", where,
                                        "basefuse uses one density for every model"))
    if "gamma" in (per_model[0] if per_model else {}):
        params["gamma"] = float(_same([m["gamma"] for m in per_model], "gamma", where,
                                      "basefuse uses one gamma for every model"))
    if weights is not None and (sum(weights) <= 0 or min(weights) < 0):
        raise BasefuseError(f"{where}: weights {weights} must be non-negative with a positive sum")
    needs_base = mk in ("task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs", "model_stock", "slerp")
    if needs_base and base is None:
        raise BasefuseError(f"{where}: merge_method {mk} needs base_model (the pretrained model)")
    lam = float(glob.get("lambda", 1.0))
    normalize = bool(glob.get("normalize", False))
    if mk == "linear":
        if not normalize:
            raise BasefuseError(f"{where}: parameters.normalize false (an unnormalised sum of models) is not "
                                "supported; basefuse's linear is the weighted mean")
        return FuseRequest(names, method, base, weights, {}, dtype)
    if mk == "model_stock":
        return FuseRequest(names, method, base, None, {"filter_wise": bool(glob["filter_wise"])}, dtype)
    if mk == "slerp":
        if "t" not in glob:
            raise BasefuseError(f"{where}: parameters.t is missing (mergekit's slerp requires it)")
        others = [n for n in names if n != base]
        if len(names) != 2 or base not in names:
            raise BasefuseError(f"{where}: slerp takes exactly two models, one of them base_model (t = 0)")
        return FuseRequest([base, *others], method, None, None, {"t": float(_scalar(glob["t"], "t"))}, dtype)
    # task-vector methods: mergekit's Σ w_i δ_i (÷ Σ w_i with normalize) is basefuse's normalised weights × scale
    total = sum(weights)
    scale = lam if normalize else lam * total
    if mk in ("dare_linear", "dare_ties"):
        if not glob.get("rescale", True):
            raise BasefuseError(f"{where}: parameters.rescale false is not supported; basefuse's {mk} "
                                "rescales kept entries by 1/density")
        if mk == "dare_ties":  # the election and the normalised mean do not depend on the weights' scale
            return FuseRequest(names, method, base, weights, {**params, "lambda": scale, "normalize": normalize},
                               dtype)
        return FuseRequest(names, method, base, weights, {**params, "lambda": scale}, dtype)
    equal = _same(weights, "weight", where, f"basefuse's {method} weighs every task vector alike (for "
                  "per-model weights use merge_method dare_linear with density 1: weighted task arithmetic)")
    n = len(names)
    if mk == "ties":
        if not normalize:
            raise BasefuseError(f"{where}: parameters.normalize false is not supported for ties; basefuse's ties "
                                "is the disjoint mean (normalize true)")
        return FuseRequest(names, method, base, None, {**params, "lambda": lam}, dtype)
    # task_arithmetic, breadcrumbs: λ Σ w δ_i (÷ n w with normalize) is basefuse's λ' Σ δ_i
    return FuseRequest(names, method, base, None, {**params, "lambda": lam / n if normalize else lam * equal},
                       dtype)
