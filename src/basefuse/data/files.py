"""User data files: CSV / TSV / JSONL / Parquet, one file or a folder of split files.

Splits come from file names (`train.csv`, `validation.csv`, `test.csv`; also dev/valid)
or from a `split` column; otherwise everything is train and the recipe carves the rest.
"""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from basefuse.data.build import canonical_split
from basefuse.data.encoding import decode_text, read_bytes
from basefuse.errors import BasefuseError

COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
SPLIT_COL = "split"


def file_format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return FORMATS.get(suffixes[-1]) if suffixes else None


def _stem(path: Path) -> str:
    name = path.name
    while Path(name).suffix.lower() in (*COMPRESSIONS, *FORMATS):
        name = Path(name).stem
    return name


def _read_text_table(path: Path, sep: str, str_cols: list[str]) -> tuple[pd.DataFrame, str]:
    # Texts and labels stay exactly as written: no NA guessing ("NA" and "null" are words too) and no numbers
    # ("1.1" and "1.10" are two classes, as they are in JSON Lines).
    text, enc = decode_text(read_bytes(path), path)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, keep_default_na=False, na_values=[],
                         dtype={c: str for c in str_cols})
        return df, enc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise BasefuseError(f"cannot parse {path} as {'TSV' if sep == chr(9) else 'CSV'}: "
                            f"{str(e).splitlines()[0]}") from e


def read_table(path: Path, str_cols: list[str]) -> tuple[pd.DataFrame, str | None]:
    """Read one data file; returns the frame and the text encoding used (None for binary formats).

    `str_cols`: the columns a CSV/TSV keeps as strings (texts and labels).
    """
    fmt = file_format(path)
    if fmt in ("csv", "tsv"):
        return _read_text_table(path, "," if fmt == "csv" else "\t", str_cols)
    if fmt == "jsonl":
        try:
            return pd.read_json(path, lines=True, dtype=False), "utf-8"
        except ValueError as e:
            raise BasefuseError(f"cannot parse {path} as JSON Lines (one JSON object per line): "
                                f"{str(e).splitlines()[0]}") from e
    if fmt == "parquet":
        try:
            return pd.read_parquet(path), None
        except Exception as e:
            raise BasefuseError(f"cannot read {path} as Parquet: {str(e).splitlines()[0]}") from e
    raise BasefuseError(f"unsupported data file {path}: use .csv, .tsv, .jsonl or .parquet")


def select_columns(df: pd.DataFrame, source: str, text_col: str, label_col: str,
                   pair_col: str | None) -> pd.DataFrame:
    """Rename the user's columns to text / label / text_pair, naming any that is missing."""
    wanted = {"text": (text_col, "--text-col"), "label": (label_col, "--label-col")}
    if pair_col:
        wanted["text_pair"] = (pair_col, "--pair-col")
    out = {}
    for key, (col, flag) in wanted.items():
        if col not in df.columns:
            avail = ", ".join(map(str, df.columns)) or "none"
            raise BasefuseError(f"column {col!r} not found in {source} (available: {avail}); "
                                f"pass {flag} NAME to choose the {key} column")
        out[key] = df[col]
    return pd.DataFrame(out)


def _split_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    data_files = sorted(p for p in folder.iterdir() if p.is_file() and file_format(p))
    for p in data_files:
        split = canonical_split(_stem(p))
        if split is None:
            continue
        if split in found:
            raise BasefuseError(f"folder {folder} has two files for the {split} split ({found[split].name}, "
                                f"{p.name}): keep one")
        found[split] = p
    if not found and len(data_files) == 1:
        found["train"] = data_files[0]
    if not found:
        raise BasefuseError(f"folder {folder} has no data files named train/validation/test "
                            f"(.csv, .tsv, .jsonl, .parquet): add train.csv (and optionally the others)")
    return found


def load_file_frames(path: str | Path, *, text_col: str = "text", label_col: str = "label",
                     pair_col: str | None = None) -> tuple[dict[str, pd.DataFrame], dict]:
    """Split frames (columns text, label[, text_pair]) from a data file or a folder of split files."""
    path = Path(path)
    str_cols = [text_col, label_col] + ([pair_col] if pair_col else [])
    meta: dict = {"files": {}}
    if path.is_dir():
        frames = {}
        for split, p in _split_files(path).items():
            df, enc = read_table(p, str_cols)
            frames[split] = select_columns(df, str(p), text_col, label_col, pair_col)
            meta["files"][split] = str(p)
            if enc:
                meta.setdefault("encoding", {})[split] = enc
        return frames, meta
    if not path.exists():
        raise BasefuseError(f"data file {path} not found: give an existing file or folder, "
                            f"a built-in task name or hf:NAME")
    df, enc = read_table(path, str_cols)
    meta["files"]["all"] = str(path)
    if enc:
        meta["encoding"] = enc
    if SPLIT_COL in df.columns and SPLIT_COL not in (text_col, label_col, pair_col):
        frames = {}
        for value, part in df.groupby(df[SPLIT_COL].astype(str), sort=True):
            split = canonical_split(value)
            if split is None:
                raise BasefuseError(f"column {SPLIT_COL!r} of {path} has value {value!r}: use train, "
                                    f"validation (or dev/valid) or test")
            if split in frames:
                raise BasefuseError(f"column {SPLIT_COL!r} of {path} names the {split} split twice "
                                    f"(e.g. {value!r}): use one spelling")
            frames[split] = select_columns(part, f"{path}", text_col, label_col, pair_col)
        return frames, meta
    return {"train": select_columns(df, str(path), text_col, label_col, pair_col)}, meta


def default_name(path: str | Path) -> str:
    path = Path(path)
    return path.resolve().name if path.is_dir() else _stem(path)
