"""The output's model card (README.md) and fusion.json manifest: what went in, how, and what was dropped."""
from __future__ import annotations

from typing import Any

from basefuse.fusion.methods import METHODS


def _paper(method: str) -> str:
    """The method's declared source (empty for a name no longer declared, e.g. an old manifest)."""
    return METHODS[method].paper if method in METHODS else ""


def model_card(manifest: dict[str, Any]) -> str:
    """A human-readable README.md carrying the same facts as fusion.json."""
    lines = ["---", "library_name: transformers", "tags:", "- basefuse", "- model-fusion", "---", "",
             "# Fused base model", "",
             f"Made with basefuse {manifest['basefuse_version']} on {manifest['created']} by fusing "
             f"{len(manifest['sources'])} finetuned checkpoints into a new base model (heads dropped).", "",
             f"- **Method**: `{manifest['method']}` ({_paper(manifest['method'])})",
             f"- **Parameters**: `{manifest['params']}`",
             f"- **Weights**: {manifest['weights']}",
             f"- **Accumulation dtype**: {manifest['accumulate']}; output dtype: {manifest['dtype'] or 'as input'}",
             f"- **Base**: {manifest['base']['name'] if manifest['base'] else 'none (bare body of the first source)'}",
             f"- **Fused tensors / parameters**: {manifest['fused_tensors']} / {manifest['fused_parameters']}",
             f"- **Dropped keys** (heads etc.): {len(manifest['dropped_keys'])}, listed in fusion.json", "",
             "## Inputs (sha256)", ""]
    for role, entry in ([("source", s) for s in manifest["sources"]]
                        + ([("base", manifest["base"])] if manifest["base"] else [])):
        lines.append(f"- {role} `{entry['name']}` (model_type {entry['model_type']})")
        for fname, digest in entry["sha256"].items():
            lines.append(f"  - `{fname}`: `{digest}`")
    lines += ["", "Load it with `AutoModel.from_pretrained(path)` or "
              "`AutoModelForSequenceClassification.from_pretrained(path, num_labels=k)`.", ""]
    return "\n".join(lines)
