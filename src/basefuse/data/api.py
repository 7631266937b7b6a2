"""`load_task`: one entry point for built-in names, data files/folders, `hf:` specs and saved datasets."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from basefuse.data.builtin import BUILTIN_FAMILIES, BUILTIN_TASKS, NORMALISER_VERSION, load_builtin_frame
from basefuse.data.build import build_task
from basefuse.data.task import Task
from basefuse.errors import BasefuseError

__all__ = ["load_task", "list_builtin_tasks", "TaskInfo", "BUILTIN_FAMILIES"]


@dataclass(frozen=True)
class TaskInfo:
    name: str
    family: str
    size: int
    num_classes: int
    licence: str
    wheel: str
    description: str


def list_builtin_tasks() -> list[TaskInfo]:
    """The built-in tasks, grouped by family; reads nothing from disk or network."""
    return [TaskInfo(t.name, t.family, t.size, t.num_classes, t.licence, t.wheel.requirement, t.description)
            for t in BUILTIN_TASKS.values()]


def _looks_like_path(spec: str) -> bool:
    return any(c in spec for c in "/\\") or spec.startswith((".", "~")) or Path(spec).suffix != ""


def data_path(spec: str) -> Path | None:
    """The local data file or folder a task spec names (as `load_task` reads it); None for a built-in task or a
    Hugging Face dataset (`hf:NAME`), which each machine loads from its own cache."""
    from basefuse.data.hf import HF_PREFIX

    spec = str(spec)
    if spec in BUILTIN_TASKS or spec.startswith(HF_PREFIX):
        return None
    path = Path(spec).expanduser()
    return path if path.exists() else None


def load_task(spec: str, *, max_train: int | None = None, text_col: str = "text", label_col: str = "label",
              pair_col: str | None = None, family: str | None = None) -> Task:
    """Load a task with train/validation/test splits following the seed paper's recipe.

    `spec` is a built-in name (see `list_builtin_tasks`), a data file or folder, `hf:NAME[/CONFIG]`,
    or a `save_to_disk` folder. Column options apply to files and Hugging Face datasets.
    """
    from basefuse.data.hf import HF_PREFIX, is_saved_dataset, load_disk_frames, load_hf_frames

    spec = str(spec)
    cols = {"text": text_col, "label": label_col, **({"text_pair": pair_col} if pair_col else {})}
    if spec in BUILTIN_TASKS:
        bt = BUILTIN_TASKS[spec]
        df = load_builtin_frame(spec)
        return build_task(spec, {"train": df}, max_train=max_train, family=family or bt.family,
                          source=f"builtin:{spec} ({bt.wheel.requirement}, {bt.member})",
                          extra={"wheel_sha256": bt.wheel.sha256, "normaliser_version": NORMALISER_VERSION})
    if spec.startswith(HF_PREFIX):
        frames, meta, name = load_hf_frames(spec, text_col=text_col, label_col=label_col, pair_col=pair_col)
        return build_task(name, frames, max_train=max_train, family=family, source=spec, cols=cols, extra=meta)
    path = data_path(spec)
    if path is not None:
        from basefuse.data.files import default_name, load_file_frames

        if is_saved_dataset(path):
            frames, meta = load_disk_frames(path, text_col=text_col, label_col=label_col, pair_col=pair_col)
            source = f"disk:{path}"
        else:
            frames, meta = load_file_frames(path, text_col=text_col, label_col=label_col, pair_col=pair_col)
            source = f"file:{path}"
        return build_task(default_name(path), frames, max_train=max_train, family=family, source=source,
                          cols=cols, extra=meta)
    if _looks_like_path(spec):
        raise BasefuseError(f"data file or folder {spec} not found: check the path")
    close = difflib.get_close_matches(spec, list(BUILTIN_TASKS), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise BasefuseError(f"unknown built-in task {spec!r}{hint}; valid ones: {', '.join(BUILTIN_TASKS)}; "
                        f"or give a data file path or hf:NAME")
