"""Where a job finds its models and data on the node that runs it.

Planning resolves every model to a folder on the driver. A local folder must be on storage every node sees (checked
at start on Ray, see `local_paths`); a model planning fetched into a cache (a hub id into the hub cache, a built-in
model into basefuse's cache) is recorded with its *origin* as well, so a node where the driver's folder is absent
fetches the same weights into its own cache: a hub id at the exact commit planning resolved, which the weights'
fingerprint then confirms. The origin, like the path, is where the weights are, not what they are: job keys hash
the fingerprint only (`jobs._content_view`).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: The keys of a model reference that say where its weights are (never part of a job key when it has a fingerprint).
LOCATION_KEYS = ("base", "hub", "revision", "builtin")


def hub_snapshot_origin(path: str | Path) -> dict[str, str]:
    """{"hub": id, "revision": commit} for a folder of the hub cache (`.../models--org--name/snapshots/<commit>`),
    {} for any other folder."""
    from basefuse.checkpoints.ref import snapshot_origin

    hub, commit = snapshot_origin(path)
    return {"hub": hub, "revision": commit} if hub and commit else {}


def origin_of(spec: str, path: str | Path) -> dict[str, str]:
    """How a node without the driver's folder `path` finds the model planning resolved `spec` to: a built-in
    model by its name, a hub snapshot by id and commit; {} for a user's local folder (it must be shared)."""
    from basefuse.models import BUILTIN_MODELS

    if spec in BUILTIN_MODELS:
        return {"builtin": spec}
    if Path(spec).expanduser().exists():  # a local folder given as such, even if it lies in a hub cache
        return {}
    return hub_snapshot_origin(path)


def locate(ref: dict[str, Any]) -> str:
    """The folder of a model reference on this node: the recorded path where it exists, otherwise its origin
    resolved through this node's own cache (offline-aware; the caller checks the fingerprint). A local folder with
    no origin is returned as recorded: reading it fails naming the path (the start-up check names the node)."""
    path = ref["base"]
    if Path(path).is_dir() or not ({"hub", "builtin"} & ref.keys()):
        return path
    if "builtin" in ref:
        from basefuse.models import resolve_model

        return resolve_model(ref["builtin"])
    from basefuse.checkpoints.source import resolve

    return str(resolve(ref["hub"], revision=ref["revision"]))


def _local_data(spec: str) -> str | None:
    from basefuse.data.api import data_path

    return spec if data_path(spec) is not None else None


def local_paths(jobs: Iterable[dict[str, Any]], extra: Iterable[str] = ()) -> list[str]:
    """Every local path the jobs read, as they will read it (in first-seen order): model folders without an origin
    (a hub id or built-in model is fetched on each node instead) and task data files or folders. `extra`: further
    task specs (e.g. the probe tasks of a selection not planned yet)."""
    found: dict[str, None] = dict.fromkeys(s for s in extra if _local_data(s))

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            if isinstance(obj.get("base"), str) and not ({"hub", "builtin"} & obj.keys()):
                found[obj["base"]] = None
            if isinstance(obj.get("spec"), str) and _local_data(obj["spec"]):
                found[obj["spec"]] = None
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    for job in jobs:
        walk(job)
    return list(found)
