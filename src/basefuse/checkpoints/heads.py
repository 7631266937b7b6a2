"""What counts as a head: asked of transformers' own model classes, remembered per transformers version.

A head model (`BertForSequenceClassification`, `LlamaForCausalLM`) keeps its body under the class's
`base_model_prefix` (`bert.`, `model.`); the keys outside it are heads. A *task* head (a classifier) is
dropped by fusion; a *language-model* head (`lm_head` of a causal LM, `cls.predictions` of a masked LM, the
output layer of a seq2seq LM) predicts over the shared vocabulary, so it is fused like the body when every
source has it (see `checkpoints.align`).

Importing transformers costs seconds and a few hundred MB (it imports torch), and the fusion path otherwise
never imports it, so a process that has not imported it already asks in a child process, and the answers are
kept in `$BASEFUSE_CACHE/model-classes/` per transformers version: each model type is asked once per machine.
A model type transformers does not know (remote code) gets `None`, and the caller falls back to the
checkpoint's own keys.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

#: transformers' mappings whose classes end in a head over the vocabulary
_LM_MAPPINGS = ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
                "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", "MODEL_WITH_LM_HEAD_MAPPING_NAMES",
                "MODEL_FOR_PRETRAINING_MAPPING_NAMES")
_LOCK = threading.Lock()
_MEMO: dict[str, dict] = {}


@dataclass(frozen=True)
class ClassFacts:
    """transformers' facts about one model type: the body prefix of its classes (None: unknown type)."""

    prefix: str | None
    language_model_classes: frozenset[str]


def _version() -> str:
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return "none"


def _store() -> Path:
    from basefuse.io import cache_dir

    return cache_dir() / "model-classes" / f"transformers-{_version()}.json"


def _load() -> dict:
    path = _store()
    if path.name in _MEMO:
        return _MEMO[path.name]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data.get("prefix"), dict) or not isinstance(data.get("language_model_classes"), list):
            raise ValueError("malformed")
    except (OSError, ValueError):
        data = {"prefix": {}, "language_model_classes": None}
    _MEMO[path.name] = data
    return data


def _save(data: dict) -> None:
    from basefuse.io import write_json

    try:
        _store().parent.mkdir(parents=True, exist_ok=True)
        write_json(_store(), data)
    except OSError:  # a read-only cache only costs the lookup again next time
        pass


def ask_transformers(model_type: str) -> dict:
    """transformers' answer for `model_type`: {"prefix": str | None, "language_model_classes": [...]}."""
    try:
        from transformers.models.auto import modeling_auto
    except ImportError:  # transformers missing: every type is unknown, the keys decide
        return {"prefix": None, "language_model_classes": []}
    names: set[str] = set()
    for mapping in _LM_MAPPINGS:
        for value in getattr(modeling_auto, mapping, {}).values():
            names.update([value] if isinstance(value, str) else value)
    cls_name = modeling_auto.MODEL_MAPPING_NAMES.get(model_type)
    prefix = None
    if cls_name:
        import transformers

        cls = getattr(transformers, cls_name if isinstance(cls_name, str) else cls_name[0], None)
        prefix = getattr(cls, "base_model_prefix", None) or None
    return {"prefix": prefix, "language_model_classes": sorted(names)}


def _ask(model_type: str) -> dict | None:
    """In this process if transformers is loaded already, else in a child (this one stays lean); None: no answer."""
    if "transformers" in sys.modules:
        return ask_transformers(model_type)
    try:
        done = subprocess.run([sys.executable, "-m", "basefuse.checkpoints.heads", model_type],
                              capture_output=True, text=True, timeout=600, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def class_facts(model_type: str | None) -> ClassFacts:
    """The body prefix transformers uses for `model_type`, and the class names that end in a vocabulary head."""

    with _LOCK:
        data = _load()
        if (model_type and model_type not in data["prefix"]) or data["language_model_classes"] is None:
            answer = _ask(model_type or "")
            if answer is None:  # no transformers answer (broken install): the keys decide, nothing remembered
                return ClassFacts(prefix=None, language_model_classes=frozenset())
            if model_type:
                data["prefix"][model_type] = answer["prefix"]
            data["language_model_classes"] = answer["language_model_classes"]
            _save(data)
        prefix = data["prefix"].get(model_type) if model_type else None
        return ClassFacts(prefix=prefix, language_model_classes=frozenset(data["language_model_classes"]))


def is_language_model(config: dict) -> bool:
    """Whether the checkpoint's class ends in a head over the vocabulary (its `architectures[0]`)."""
    archs = config.get("architectures") or []
    return bool(archs) and archs[0] in class_facts(config.get("model_type")).language_model_classes


if __name__ == "__main__":  # the child process of `_ask`
    print(json.dumps(ask_transformers(sys.argv[1])))
