"""What a model card says about the models it came from, in the form the Hub reads (YAML front matter).

Shared by the fused model's card and the finetuned model's card: how an input is named (a hub id at its commit,
never a local absolute path), which licence it declares, and the front matter itself.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def card_name(name: str, hub_id: str | None, commit: str | None, builtin: bool = False) -> str:
    """How a card names an input: `org/name@commit` for a hub model, a built-in by its name, a relative local
    folder as it was typed, an absolute one by its last component (a card is published: no local paths)."""
    if hub_id is not None and not builtin:
        return f"{hub_id}@{commit}" if commit else hub_id
    path = Path(name)
    if builtin or not (path.is_absolute() or name.startswith("~")):
        return name
    return path.name or name


def declared_licence(folder: Path | None, builtin_licence: str | None = None) -> str | None:
    """The licence a model's own card declares (`license:` in its README.md front matter), if any."""
    if builtin_licence is not None:
        return builtin_licence
    card = folder / "README.md" if folder is not None else None
    if card is None or not card.is_file():
        return None
    from huggingface_hub import metadata_load

    try:
        meta = metadata_load(card) or {}
    except Exception:  # a card whose front matter is not YAML declares nothing we can read
        return None
    licence = meta.get("license")
    return licence if isinstance(licence, str) and licence else None


def common_licence(licences: list[str | None]) -> str | None:
    """One licence for a model made of several: theirs when all declare the same one, else unknown (None)."""
    known = set(licences)
    return licences[0] if len(known) == 1 and None not in known else None


def front_matter(*, base_models: list[str], relation: str, licence: str | None, tags: list[str],
                 **extra: Any) -> str:
    """The card's YAML header as the Hub reads it: `base_model` a list for a merge, one id otherwise, and
    `base_model_relation` only beside a `base_model` (the Hub's model tree needs both)."""
    from huggingface_hub import ModelCardData

    parents = list(dict.fromkeys(base_models))  # each once, in order
    data = ModelCardData(base_model=(parents if relation == "merge" else parents[0]) if parents else None,
                         base_model_relation=relation if parents else None, library_name="transformers",
                         license=licence, tags=tags, **extra)
    return f"---\n{data.to_yaml()}\n---\n"
