"""The output's model card (README.md): the facts of fusion.json as the Hub and a reader want them.

Front matter for the Hub's model tree (`base_model` = the hub ids fused, `base_model_relation: merge`), the recipe,
a command that reproduces it, and the inputs' sha256. Inputs are named by hub id at their commit, or by the local
name they were given; a local absolute path never appears (the card is meant to be published).
"""
from __future__ import annotations

from typing import Any

from basefuse.fusion.methods import METHODS
from basefuse.hub.card import card_name, front_matter

TAGS = ["merge", "basefuse", "model-fusion"]


def _paper(method: str) -> str:
    """The method's declared source (empty for a name no longer declared, e.g. an old manifest)."""
    return METHODS[method].paper if method in METHODS else ""


def _named(entry: dict[str, Any]) -> str:
    from basefuse.models import BUILTIN_MODELS

    return card_name(entry["name"], entry.get("hub_id"), entry.get("commit"),
                     builtin=entry["name"] in BUILTIN_MODELS)


def public_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """fusion.json as it is published: every local absolute path replaced by the input's card name (a hub id at its
    commit, a built-in's name, a relative path as typed, else the folder's last component). The local copy keeps
    the paths: an experiment follows them to a base's history."""
    import copy
    import os

    entries = [e for e in [*manifest.get("sources", []), manifest.get("base")] if e]
    named = {}
    for e in entries:
        for field in ("name", "path"):
            if isinstance(e.get(field), str):
                named[e[field]] = _named(e)

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, str) and v in named:
            return named[v]
        if isinstance(v, str) and (os.path.isabs(v) or v.startswith("~")) and "\n" not in v:
            return os.path.basename(v.rstrip("/")) or v
        return v

    return clean(copy.deepcopy(manifest))


def reproduce_command(manifest: dict[str, Any], out: str) -> str:
    """The `basefuse fuse` line that makes this model again (hub inputs pinned to the commit that was fused)."""
    parts = ["basefuse fuse", *(_named(s) for s in manifest["sources"])]
    if manifest["base"]:
        parts += ["--base", _named(manifest["base"])]
    parts += ["--method", manifest["method"]]
    if len(set(manifest["weights"])) > 1:
        parts += ["--weights", ",".join(f"{w:g}" for w in manifest["weights"])]
    given = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in manifest["params"].items()
             if v is not None]
    if given:
        parts += ["--param", ",".join(given)]
    if manifest.get("tokenizer", "sources") != "sources":
        parts += ["--tokenizer", manifest["tokenizer"]]
    for s in manifest["sources"]:  # fisher, regmean: each source's task, a local file by its name
        if s.get("data") is not None:
            task = s["data"]["spec"] if isinstance(s["data"], dict) else s["data"]
            parts += ["--data", f"{_named(s)}={card_name(task, None, None)}"]
    if manifest["dtype"]:
        parts += ["--dtype", manifest["dtype"]]
    if manifest["accumulate"] != "float32":
        parts += ["--accumulate", manifest["accumulate"]]
    return " ".join([*parts, "--out", out])


def model_card(manifest: dict[str, Any], *, out_name: str, repo_id: str | None = None) -> str:
    """README.md of a fused model: Hub metadata, recipe, how to reproduce it, inputs with their sha256.

    `out_name`: the output folder's name; `repo_id`: the Hub repo it will be pushed to, if known (the usage
    example loads it from there)."""
    inputs = [*manifest["sources"], *([manifest["base"]] if manifest["base"] else [])]
    parents = [e["hub_id"] for e in inputs if e.get("hub_id")]
    base = manifest["base"]
    lines = [front_matter(base_models=parents, relation="merge", licence=manifest.get("license"), tags=TAGS),
             f"# {repo_id.split('/')[-1] if repo_id else out_name}", "",
             f"A base model made with basefuse {manifest['basefuse_version']} on {manifest['created']} by fusing "
             f"{len(manifest['sources'])} finetuned checkpoints"
             + (f" of `{_named(base)}`" if base else "") + " (their task heads dropped).", "",
             "## Recipe", "",
             f"- **Method**: `{manifest['method']}` ({_paper(manifest['method'])})",
             f"- **Parameters**: `{manifest['params']}`",
             f"- **Weights**: {manifest['weights']}",
             f"- **Accumulation dtype**: {manifest['accumulate']}; output dtype: {manifest['output_dtype']}",
             "- **Base**: " + (f"`{_named(base)}`" if base else "none (bare body of the first source)"),
             "- **Sources**: " + ", ".join(f"`{_named(s)}`" for s in manifest["sources"]),
             f"- **Fused tensors / parameters**: {manifest['fused_tensors']} / {manifest['fused_parameters']}",
             f"- **Dropped keys** (heads etc.): {len(manifest['dropped_keys'])}, listed in fusion.json",
             *(["- **Vocabulary**: the base's (`--tokenizer base`): "
                + ", ".join(f"`{k}` rows 0-{v['rows_fused'] - 1} fused, {v['rows'] - v['rows_fused']} from the base"
                            for k, v in manifest["vocab_rows"].items())] if manifest.get("vocab_rows") else []),
             "",
             "## Reproduce", "",
             "```bash", reproduce_command(manifest, repo_id.split("/")[-1] if repo_id else out_name), "```", "",
             "Hub inputs are pinned to the commit that was fused; local inputs are named as they were given "
             "(run it where they are).", "",
             "## Use", "",
             "```python", "from transformers import AutoModel", "",
             f'model = AutoModel.from_pretrained("{repo_id or out_name}")', "```", "",
             "Finetune it as you would its base (e.g. `AutoModelForSequenceClassification` with your `num_labels`).",
             "",
             "## Inputs (sha256)", ""]
    for role, entry in [("source", s) for s in manifest["sources"]] + ([("base", base)] if base else []):
        lines.append(f"- {role} `{_named(entry)}` (model_type {entry['model_type']})")
        for fname, digest in entry["sha256"].items():
            lines.append(f"  - `{fname}`: `{digest}`")
    lines.append("")
    return "\n".join(lines)
