"""Hugging Face datasets: `hf:NAME[/CONFIG]` via `datasets.load_dataset`, or a `save_to_disk` folder."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from basefuse.data.build import canonical_split
from basefuse.data.files import select_columns
from basefuse.errors import BasefuseError

HF_PREFIX = "hf:"
_HF_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9_][\w.-]*){0,2}")  # NAME, ORG/NAME, ORG/NAME/CONFIG


def is_saved_dataset(path: Path) -> bool:
    """A `Dataset.save_to_disk` (state.json) or `DatasetDict.save_to_disk` (dataset_dict.json) folder."""
    return path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists())


def parse_hf_spec(spec: str) -> tuple[str, str | None]:
    """`hf:glue/sst2` -> ("glue", "sst2"); `hf:org/name/config` -> ("org/name", "config").

    Only hub ids pass: `datasets.load_dataset` reads any existing local path as a folder of data files and
    scans it recursively (`hf:../../..` scanned the whole disk), so paths and local folders are refused here.
    """
    rest = spec[len(HF_PREFIX):] if spec.startswith(HF_PREFIX) else spec
    rest = rest.strip()
    if not rest:
        raise BasefuseError(f"empty Hugging Face dataset in {spec!r}: write hf:NAME or hf:NAME/CONFIG")
    parts = rest.split("/")
    if not _HF_ID.fullmatch(rest) or any(p in (".", "..") for p in parts):
        raise BasefuseError(f"{spec!r} is not a Hugging Face dataset id: write hf:NAME, hf:ORG/NAME or "
                            "hf:ORG/NAME/CONFIG (no paths); give a data file, folder or save_to_disk folder "
                            "without hf:")
    for local in {parts[0], rest, "/".join(parts[:2])}:
        if Path(local).exists():
            raise BasefuseError(f"{spec!r}: {local} is a local path here, which datasets would read instead of "
                                "the hub; give a local data folder without hf:, or run from another folder")
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 2:
        return parts[0], parts[1]
    return "/".join(parts[:-1]), parts[-1]


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:200]}" if msg else type(e).__name__


def _dict_to_frames(dd, source: str, text_col: str, label_col: str,
                    pair_col: str | None) -> tuple[dict[str, pd.DataFrame], dict]:
    from datasets import ClassLabel

    frames: dict[str, pd.DataFrame] = {}
    meta: dict = {"hf_splits": list(dd.keys())}
    for split_name, ds in dd.items():
        split = canonical_split(split_name)
        if split is None:
            meta.setdefault("ignored_splits", []).append(split_name)
            continue
        where = f"{source} split {split_name!r}"
        df = select_columns(ds.to_pandas() if len(ds.column_names) else pd.DataFrame(), where,
                            text_col, label_col, pair_col)
        feature = ds.features.get(label_col)
        if isinstance(feature, ClassLabel):
            labels = df["label"].tolist()
            if labels and all(int(v) < 0 for v in labels):  # e.g. GLUE test: labels hidden
                meta.setdefault("hidden_label_splits", []).append(split_name)
                continue
            df["label"] = [feature.names[int(v)] if int(v) >= 0 else None for v in labels]
        if split in frames:
            raise BasefuseError(f"{source} has two splits that both mean {split}: {meta['hf_splits']}")
        frames[split] = df
    return frames, meta


def load_hf_frames(spec: str, *, text_col: str = "text", label_col: str = "label",
                   pair_col: str | None = None) -> tuple[dict[str, pd.DataFrame], dict, str]:
    """Frames from the hub (online only) or a local data folder; returns (frames, meta, task name)."""
    import datasets

    saved = Path(spec[len(HF_PREFIX):].strip() or "-").expanduser()
    if is_saved_dataset(saved):
        frames, meta = load_disk_frames(saved, text_col=text_col, label_col=label_col, pair_col=pair_col)
        return frames, meta, saved.resolve().name
    name, config = parse_hf_spec(spec)
    try:
        dd = datasets.load_dataset(name, config)
    except Exception as first:
        if config is not None and "/" not in name:  # maybe hf:ORG/NAME without a config
            try:
                dd = datasets.load_dataset(f"{name}/{config}")
                name, config = f"{name}/{config}", None
            except Exception:
                dd = None
        else:
            dd = None
        if dd is None:
            raise BasefuseError(
                f"cannot load Hugging Face dataset {spec!r} ({_one_line(first)}); the hub needs network access: "
                f"offline, use a built-in task, a data file, or a save_to_disk folder") from first
    if isinstance(dd, datasets.Dataset):
        dd = datasets.DatasetDict({"train": dd})
    source = f"hf:{name}" + (f"/{config}" if config else "")
    frames, meta = _dict_to_frames(dd, source, text_col, label_col, pair_col)
    return frames, meta, name + (f"/{config}" if config else "")


def load_disk_frames(path: str | Path, *, text_col: str = "text", label_col: str = "label",
                     pair_col: str | None = None) -> tuple[dict[str, pd.DataFrame], dict]:
    import datasets

    path = Path(path)
    try:
        dd = datasets.load_from_disk(str(path))
    except Exception as e:
        raise BasefuseError(f"cannot read saved dataset folder {path} ({_one_line(e)}); "
                            f"it should come from Dataset.save_to_disk or DatasetDict.save_to_disk") from e
    if isinstance(dd, datasets.Dataset):
        dd = datasets.DatasetDict({"train": dd})
    return _dict_to_frames(dd, str(path), text_col, label_col, pair_col)
