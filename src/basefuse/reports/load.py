"""Read a run directory's results.jsonl into validated records (the report's only input)."""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from basefuse.errors import BasefuseError
from basefuse.experiments.records import RunRecord

ABLATIONS = ("main", "n_models")


def _check(record: RunRecord, where: str) -> None:
    """Any condition is accepted (the vocabulary is open: a new kind of base is reported, not refused)."""
    if not record.condition.strip():
        raise BasefuseError(f"{where}: field 'condition' is empty; fix or remove that line")
    if record.ablation not in ABLATIONS:
        raise BasefuseError(f"{where}: ablation {record.ablation!r} is not one of {', '.join(ABLATIONS)}; "
                            "fix or remove that line")
    for name in ("accuracy", "macro_f1"):
        value = getattr(record, name)
        if not 0.0 <= value <= 1.0:
            raise BasefuseError(f"{where}: field '{name}' is {value}, expected a fraction in [0, 1]; "
                                "fix or remove that line")


def read_results(path: str | Path) -> tuple[list[RunRecord], list[str]]:
    """Return (records, warnings).

    A line that is not valid JSON (typically a half-written last line after a crash) is
    skipped with a warning; a JSON object that is not a valid record is an error, because
    silently dropping real results would bias the report.
    """
    path = Path(path)
    if not path.is_file():
        raise BasefuseError(f"{path} not found: run `basefuse experiment` first or pass the run directory")
    warnings: list[str] = []
    records: list[RunRecord] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                warnings.append(f"{where}: skipped a corrupt line (not valid JSON, e.g. half-written after a crash)")
                continue
            if not isinstance(obj, dict):
                warnings.append(f"{where}: skipped a line that is not a JSON object")
                continue
            try:
                record = RunRecord.model_validate(obj)
            except ValidationError as e:
                err = e.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or "?"
                what = "missing" if err["type"] == "missing" else f"invalid ({err['msg']})"
                raise BasefuseError(f"{where}: field '{field}' is {what}; fix or remove that line") from None
            _check(record, where)
            records.append(record)
    return records, warnings
