"""What the experiment's base model was trained on, when basefuse made it: read from the records it wrote.

`basefuse finetune --save --out D` writes D/metrics.json beside the model D/model (the task's name, its
loader fingerprint and, since this check exists, its source), and names the model it started from;
`basefuse fuse --out D` writes D/fusion.json naming every input folder. Following those records back
gives every finetune in the base's history, so a base finetuned (or fused from finetunes) on a target's
data is refused like a fused base inside the plan is. A base with no such record (a built-in model, a
plain Hugging Face folder, a hub id) has unknown provenance: what it was pretrained on cannot be checked,
and the leakage table says so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from basefuse.errors import BasefuseError

if TYPE_CHECKING:
    from basefuse.data.model_view import ModelView
    from basefuse.experiments.config import ExperimentConfig
    from basefuse.experiments.leakage import BaseModelFacts

UNKNOWN = "provenance unknown"


@dataclass(frozen=True)
class TrainedOn:
    """One finetune in a base model's history, as its metrics.json recorded it."""

    task: str
    task_fingerprint: str | None  # the loader's fingerprint of the data as finetuned (budget applied)
    task_source: str | None  # where the data came from (`file:PATH`, `builtin:NAME (...)`, ...), if recorded
    max_train: int | None  # the train budget it used, if any
    record: str  # the metrics.json it comes from

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "task_fingerprint": self.task_fingerprint, "task_source": self.task_source,
                "max_train": self.max_train, "record": self.record}


@dataclass(frozen=True)
class BaseRecord:
    """The base model's provenance: made by basefuse (with every finetune in its history) or unknown."""

    spec: str
    made_by_basefuse: bool
    trained_on: tuple[TrainedOn, ...] = ()
    unknown: tuple[str, ...] = ()  # models in its history that basefuse did not make (e.g. the pretrained root)

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec, "provenance": "made by basefuse" if self.made_by_basefuse else UNKNOWN,
                "trained_on": [t.to_json() for t in self.trained_on], "not_made_by_basefuse": list(self.unknown)}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BasefuseError(f"{path}: cannot read this record of the base model's history ({e}): restore it, "
                            "or use a base without it") from None
    if not isinstance(data, dict):
        raise BasefuseError(f"{path}: not a JSON object: restore the record, or use a base without it")
    return data


def _as_folder(spec: Any, relative_to: Path) -> Path | None:
    """A model a record names, as a folder if it is one (absolute, or relative to the record or to here)."""
    if not isinstance(spec, str) or not spec:
        return None
    for p in (Path(spec), relative_to / spec):
        if p.is_dir():
            return p.resolve()
    return None


def read_base_record(model_dir: str | Path, spec: str) -> BaseRecord:
    """Follow metrics.json / fusion.json back from `model_dir` through every finetune and fusion."""
    trained: list[TrainedOn] = []
    unknown: list[str] = []
    visited: set[Path] = set()

    def walk(folder: Path, name: str) -> bool:
        """True if basefuse made `folder`."""
        folder = folder.resolve()
        if folder in visited:
            return True
        visited.add(folder)
        if (folder / "fusion.json").is_file():
            manifest = _read_json(folder / "fusion.json")
            inputs = [*(manifest.get("sources") or []), *([manifest["base"]] if manifest.get("base") else [])]
            for entry in inputs:
                path = entry.get("path") if isinstance(entry, dict) else None
                found = _as_folder(path, folder)
                if found is None:
                    unknown.append(f"{path} (input of {folder / 'fusion.json'}, not found)")
                else:
                    walk(found, str(path))
            return True
        record = folder.parent / "metrics.json"
        if folder.name == "model" and record.is_file():
            m = _read_json(record)
            hp = m.get("hyperparameters") if isinstance(m.get("hyperparameters"), dict) else {}
            trained.append(TrainedOn(task=str(m.get("task", "?")), task_fingerprint=m.get("task_fingerprint"),
                                     task_source=m.get("task_source"), max_train=hp.get("max_train"),
                                     record=str(record)))
            start = _as_folder(m.get("model"), folder.parent)
            if start is None:
                unknown.append(str(m.get("model", "?")))
            else:
                walk(start, str(m.get("model")))
            return True
        unknown.append(name)
        return False

    made = walk(Path(model_dir), spec)
    return BaseRecord(spec=spec, made_by_basefuse=made, trained_on=tuple(trained), unknown=tuple(unknown))


def loadable_spec(source: str | None) -> str | None:
    """The `load_task` spec of a recorded task source, if its data can still be loaded here."""
    if not source:
        return None
    kind, _, rest = source.partition(":")
    if kind == "builtin":
        return rest.split(" ", 1)[0]
    if kind in ("file", "disk") and Path(rest).exists():
        return rest
    return None


def base_model_facts(cfg: "ExperimentConfig", model_dir: str | Path, view: "ModelView | None") -> "BaseModelFacts":
    """Everything the leakage check needs of the base model: its record, and for a base that basefuse made, the
    content of every task in its history that can still be loaded and every target's loader fingerprints at
    the budgets its finetunes used (a record made before task sources were written is matched by those alone)."""
    from basefuse.data.api import load_task
    from basefuse.experiments.leakage import BaseModelFacts, task_content

    record = read_base_record(model_dir, cfg.base_model)
    facts = BaseModelFacts(record.to_json())
    if not record.made_by_basefuse:
        return facts
    contents = {}
    for t in record.trained_on:
        spec = loadable_spec(t.task_source)
        if spec is not None and facts.label(t.task) not in contents:
            contents[facts.label(t.task)] = task_content(load_task(spec), view)
    budgets = {None, cfg.budgets.max_train_source, cfg.budgets.max_train_target,
               *(t.max_train for t in record.trained_on)}
    targets = set(cfg.target_names())
    fps = {name: frozenset(load_task(ref.load_spec, max_train=b, text_col=ref.text_col, label_col=ref.label_col,
                                     pair_col=ref.pair_col, family=cfg.family_of(name)).fingerprint for b in budgets)
           for name, ref in cfg.task_refs().items() if name in targets}
    return BaseModelFacts(record.to_json(), contents, fps)
