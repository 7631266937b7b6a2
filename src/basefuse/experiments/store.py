"""A crash-safe, append-only record of finished jobs (JSON lines, fsync'd after each append).

A crash can at worst leave a half-written last line; readers skip it (as any line that is
not UTF-8 JSON), and the job it described is simply done again (or recovered from its
complete output folder).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from basefuse.io import append_jsonl, write_error


class JobStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.results: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        with open(self.path, "rb") as f:  # bytes: one line of bad bytes must not hide the others
            for line in f:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line.decode("utf-8"))
                    self.results[row["key"]] = row
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                    self.skipped_lines += 1

    def __contains__(self, key: str) -> bool:
        return key in self.results

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.results.get(key)
        return None if row is None else row.get("result")

    def append(self, key: str, kind: str, label: str, result: dict[str, Any]) -> None:
        row = {"key": key, "kind": kind, "label": label, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "result": result}
        try:
            append_jsonl(self.path, [row])
        except OSError as e:
            raise write_error(e, f"cannot record finished job {key} ({label}) in {self.path}: {e.strerror or e}; "
                                 "free space and rerun (finished jobs are recovered from their outputs)") from None
        self.results[key] = row
