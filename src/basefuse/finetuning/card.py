"""README.md of a model saved by `basefuse finetune --save`: Hub metadata, its test metrics, the command that made it.

The model is named by the hub id it was finetuned from (`base_model_relation: finetune`), never by a local absolute
path; the licence is the base model's own, when its card declares one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from basefuse.finetuning.config import CLI_FLAGS, FinetuneConfig
from basefuse.hub.card import card_name, front_matter

TAGS = ["basefuse", "text-classification"]


def task_name(source: str, name: str) -> str:
    """The `--task` that loads the data again: a built-in or hf: name as is, a local file by its card name."""
    if source.startswith("builtin:"):
        return name
    if source.startswith(("file:", "disk:")):
        return card_name(source.split(":", 1)[1], None, None)
    return source or name


def reproduce_command(metrics: dict[str, Any], model: str, task: str) -> str:
    """The `basefuse finetune` line that trains this model again (options that differ from the defaults)."""
    parts = ["basefuse finetune", "--model", model, "--task", task, "--seed", str(metrics["seed"])]
    defaults = FinetuneConfig().model_dump(mode="json")
    for field, value in metrics["hyperparameters"].items():
        if field in CLI_FLAGS and value != defaults.get(field):
            parts += [CLI_FLAGS[field], "0" if field == "max_grad_norm" and value is None else str(value)]
    return " ".join([*parts, "--save", "--out", "OUT"])


def finetune_card(metrics: dict[str, Any], *, base_hub_id: str | None, base_commit: str | None,
                  licence: str | None, repo_id: str | None = None) -> str:
    """The card of a finetuned classifier; `repo_id`: the Hub repo it will be pushed to, if known."""
    from basefuse.models import BUILTIN_MODELS

    builtin = metrics["model"] in BUILTIN_MODELS
    pinned = card_name(metrics["model"], base_hub_id, base_commit, builtin=builtin)  # --model takes id@commit
    task = task_name(metrics.get("task_source", ""), metrics["task"])
    extra: dict[str, Any] = {"pipeline_tag": "text-classification"}
    if task.startswith("hf:"):
        from basefuse.data.hf import parse_hf_spec

        extra["datasets"] = [parse_hf_spec(task)[0]]
    test, val = metrics["test"], metrics["validation"]
    where = repo_id or "OUT/model"
    lines = [front_matter(base_models=[base_hub_id] if base_hub_id else [], relation="finetune", licence=licence,
                          tags=TAGS, **extra),
             f"# {repo_id.split('/')[-1] if repo_id else metrics['task'] + ' classifier'}", "",
             f"`{pinned}` finetuned on `{task}` ({len(metrics['label_names'])} labels: "
             f"{', '.join(map(str, metrics['label_names']))}) with basefuse, seed {metrics['seed']}.", "",
             "## Results", "",
             "| split | n | accuracy | macro-F1 |", "|---|---:|---:|---:|",
             f"| validation | {val.get('n')} | {val.get('accuracy', float('nan')):.4f} | "
             f"{val.get('macro_f1', float('nan')):.4f} |",
             f"| test | {test['n']} | {test['accuracy']:.4f} | {test['macro_f1']:.4f} |", "",
             f"{metrics['steps']} optimiser steps (best at {metrics['best_step']}) on {metrics['n']['train']} "
             f"training examples, {metrics['precision']} on {metrics['device']}.", "",
             "## Reproduce", "",
             "```bash", reproduce_command(metrics, pinned, task), "```", "",
             f"Hyperparameters: `{metrics['hyperparameters']}`", "",
             "## Use", "",
             "```python", "from transformers import AutoModelForSequenceClassification, AutoTokenizer", "",
             f'model = AutoModelForSequenceClassification.from_pretrained("{where}")',
             f'tokenizer = AutoTokenizer.from_pretrained("{where}")', "```", ""]
    return "\n".join(lines)


def write_card(folder: Path, metrics: dict[str, Any], model_path: str, repo_id: str | None) -> None:
    """Write README.md into the saved model `folder`, looking up the base model's hub id, commit and licence."""
    from basefuse.checkpoints.source import hub_origin
    from basefuse.hub.card import declared_licence
    from basefuse.models import BUILTIN_MODELS

    spec = metrics["model"]
    builtin = BUILTIN_MODELS.get(spec)
    hub_id, commit = hub_origin(spec, Path(model_path))  # model_path: the folder resolve_model gave (a hub snapshot)
    licence = declared_licence(Path(model_path), builtin.licence_id if builtin else None)
    card = finetune_card(metrics, base_hub_id=hub_id, base_commit=commit, licence=licence, repo_id=repo_id)
    (folder / "README.md").write_text(card, encoding="utf-8")
