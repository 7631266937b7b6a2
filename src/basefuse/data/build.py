"""Turn raw split frames into a validated `Task`: label ids, carved splits, subsample, fingerprint.

Every loader (built-in, files, Hugging Face) ends here, so the checks and the split recipe
are the same whatever the source.
"""
from __future__ import annotations

import hashlib
import math
import numbers
import re
from typing import Any

import numpy as np
import pandas as pd

from basefuse.data import splits as S
from basefuse.data.task import Task
from basefuse.errors import BasefuseError

SPLITS = ("train", "validation", "test")
_INT = re.compile(r"-?[0-9]+")
SPLIT_ALIASES = {"train": "train", "training": "train",
                 "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
                 "test": "test", "testing": "test"}


# Label strings that mean "no value" (pandas' usual NA spellings), never a class; "none" stays a class name.
MISSING_LABELS = frozenset({"", "nan", "-nan", "na", "n/a", "<na>", "#n/a", "null"})


def canonical_split(name: str) -> str | None:
    return SPLIT_ALIASES.get(str(name).strip().lower())


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def _label_key(v: Any) -> tuple:
    # Numbers sort numerically (so 2 < 10), everything else by its string form. An integer written as a string
    # ("10", as CSV labels are read) sorts as that integer, so "2" < "10" whether a file gave 10 or "10".
    if isinstance(v, numbers.Number) and not isinstance(v, bool):
        return (0, float(v), str(v))
    if isinstance(v, str) and _INT.fullmatch(v) and str(int(v)) == v:
        return (0, float(int(v)), v)
    return (1, 0.0, str(v))


def _label_name(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _check_frame(df: pd.DataFrame, split: str, source: str, cols: dict[str, str]) -> pd.DataFrame:
    """Non-string text and missing labels are errors; empty texts are dropped (counted in `extra`)."""
    for key in ("text", "text_pair"):
        if key not in df.columns:
            continue
        bad = [i for i, v in enumerate(df[key].tolist()) if not isinstance(v, str)]
        if bad:
            v = df[key].iloc[bad[0]]
            raise BasefuseError(
                f"column {cols.get(key, key)!r} of {source} ({split}) has non-string text in row {bad[0]} "
                f"(got {type(v).__name__} {v!r}, {len(bad)} such rows): make every text a string")
    labels = df["label"].tolist()
    odd = [i for i, v in enumerate(labels) if not isinstance(v, (str, numbers.Number)) and not _is_missing(v)]
    if odd:  # a JSON list or object: unhashable, and no class name
        v = labels[odd[0]]
        raise BasefuseError(f"column {cols.get('label', 'label')!r} of {source} ({split}) has a "
                            f"{type(v).__name__} label in row {odd[0]} ({len(odd)} such rows): make every label "
                            "one string or number")
    missing = [i for i, v in enumerate(labels) if _is_missing(v) or (isinstance(v, str) and
                                                                     v.strip().lower() in MISSING_LABELS)]
    if missing:
        raise BasefuseError(f"column {cols.get('label', 'label')!r} of {source} ({split}) has a missing label "
                            f"in row {missing[0]} (empty, nan or NA; {len(missing)} such rows): fill or drop "
                            "those rows")
    return df


def _hash_splits(frames: dict[str, pd.DataFrame], label_names: list[str], max_train: int | None) -> str:
    h = hashlib.sha256()
    h.update(f"{S.SPLIT_RECIPE}|max_train={max_train}|labels={label_names!r}".encode())
    for split in SPLITS:
        df = frames[split]
        h.update(f"|{split}|{len(df)}|".encode())
        pair = df["text_pair"].tolist() if "text_pair" in df.columns else None
        for i, (t, y) in enumerate(zip(df["text"].tolist(), df["label"].tolist())):
            h.update(t.encode("utf-8", "surrogatepass"))
            if pair is not None:
                h.update(b"\x1d" + pair[i].encode("utf-8", "surrogatepass"))
            h.update(b"\x1f" + str(y).encode() + b"\x1e")
    return h.hexdigest()


def _to_dataset(df: pd.DataFrame, label_names: list[str]):
    from datasets import ClassLabel, Dataset, Features, Value

    feats = {"text": Value("string")}
    data: dict[str, list] = {"text": df["text"].tolist()}
    if "text_pair" in df.columns:
        feats["text_pair"] = Value("string")
        data["text_pair"] = df["text_pair"].tolist()
    feats["label"] = ClassLabel(names=label_names)
    data["label"] = df["label"].tolist()
    return Dataset.from_dict(data, features=Features(feats))


def build_task(name: str, frames: dict[str, pd.DataFrame], *, source: str, max_train: int | None = None,
               family: str | None = None, cols: dict[str, str] | None = None,
               extra: dict | None = None) -> Task:
    """Validate, carve missing splits (seed paper), subsample train, map labels to ints.

    `frames` maps canonical split names to frames with columns text, label (any values) and
    optionally text_pair. Only `train` is required.
    """
    cols = cols or {}
    extra = dict(extra or {})
    if max_train is not None and max_train < 2:
        raise BasefuseError(f"max_train={max_train} is too small: give at least 2 (or none for all of train)")
    if "train" not in frames:
        raise BasefuseError(f"{source} has no train split (found: {', '.join(frames) or 'none'}); "
                            f"name a file train.* or give a 'split' column with 'train' rows")
    dropped = {}
    clean: dict[str, pd.DataFrame] = {}
    for split, df in frames.items():
        if len(df) == 0:
            raise BasefuseError(f"{source} ({split}) is empty: give at least a few labelled rows")
        df = _check_frame(df.reset_index(drop=True), split, source, cols)
        keep = df["text"].str.strip() != ""
        dropped[split] = int((~keep).sum())
        df = df[keep].reset_index(drop=True)
        if len(df) == 0:
            raise BasefuseError(f"{source} ({split}) has only empty texts in column {cols.get('text', 'text')!r}")
        clean[split] = df
    extra["dropped_empty_text"] = {k: v for k, v in dropped.items() if v}

    origin = {s: "given" for s in clean}
    train = clean["train"]
    for purpose in ("test", "validation"):
        if purpose in clean:
            continue
        y = np.array([_label_name(v) for v in train["label"].tolist()], dtype=object)
        rest, drawn = S.carve(y, name, purpose)
        if len(drawn) == 0 or len(rest) == 0:
            raise BasefuseError(f"{source} has too few rows ({len(train)}) to carve a {purpose} split "
                                f"from train: give more data or a {purpose} split")
        clean[purpose] = train.iloc[drawn].reset_index(drop=True)
        train = train.iloc[rest].reset_index(drop=True)
        origin[purpose] = "carved from train"
    n_train_full = len(train)
    if max_train is not None and max_train < len(train):
        y = np.array([_label_name(v) for v in train["label"].tolist()], dtype=object)
        train = train.iloc[S.subsample(y, max_train, name)].reset_index(drop=True)
    clean["train"] = train

    raw_labels = {v for v in clean["train"]["label"].tolist()}
    train_names = {_label_name(v) for v in raw_labels}
    if len(train_names) < 2:
        raise BasefuseError(f"{source} train split has a single class ({next(iter(train_names))!r}) in column "
                            f"{cols.get('label', 'label')!r}: a classifier needs at least 2")
    label_names = [_label_name(v) for v in sorted(raw_labels, key=_label_key)]
    label_names = list(dict.fromkeys(label_names))
    for split in ("validation", "test"):
        unseen = sorted({_label_name(v) for v in clean[split]["label"].tolist()} - train_names)
        if unseen:
            raise BasefuseError(f"{source} ({split}) has labels never seen in train: {', '.join(unseen[:5])}; "
                                f"add them to train or remove those rows")
    index = {n: i for i, n in enumerate(label_names)}
    final = {}
    for split in SPLITS:
        df = clean[split].copy()
        df["label"] = [index[_label_name(v)] for v in df["label"].tolist()]
        final[split] = df
    fingerprint = _hash_splits(final, label_names, max_train)
    extra.update(split_origin=origin, n_train_full=n_train_full, max_train=max_train,
                 split_recipe=S.SPLIT_RECIPE)
    return Task(name=name, train=_to_dataset(final["train"], label_names),
                validation=_to_dataset(final["validation"], label_names),
                test=_to_dataset(final["test"], label_names), label_names=label_names, family=family,
                source=source, fingerprint=fingerprint, extra=extra)
