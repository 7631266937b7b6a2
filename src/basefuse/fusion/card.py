"""The output's model card (README.md) and fusion.json manifest: what went in, how, and what was dropped."""
from __future__ import annotations

from typing import Any

METHOD_PAPERS = {
    "average": "Choshen et al. 2022, Fusing finetuned models for better pretraining (arXiv:2204.03044)",
    "weighted": "weighted average (cf. Matena & Raffel 2022, Merging models with Fisher-weighted averaging)",
    "task-arithmetic": "Ilharco et al. 2023, Editing models with task arithmetic (arXiv:2212.04089)",
    "ties": "Yadav et al. 2023, TIES-Merging (arXiv:2306.01708)",
    "dare": "Yu et al. 2024, Language models are Super Mario (DARE, arXiv:2311.03099)",
}


def model_card(manifest: dict[str, Any]) -> str:
    """A human-readable README.md carrying the same facts as fusion.json."""
    lines = ["---", "library_name: transformers", "tags:", "- basefuse", "- model-fusion", "---", "",
             "# Fused base model", "",
             f"Made with basefuse {manifest['basefuse_version']} on {manifest['created']} by fusing "
             f"{len(manifest['sources'])} finetuned checkpoints into a new base model (heads dropped).", "",
             f"- **Method**: `{manifest['method']}` ({METHOD_PAPERS.get(manifest['method'], '')})",
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
