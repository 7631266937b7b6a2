"""A crash-safe, append-only record of finished jobs (JSON lines, fsync'd after each append).

A crash can at worst leave a half-written last line; readers skip it, and the job it
described is simply done again (or recovered from its complete output folder).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from basefuse.io import append_jsonl


class JobStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.results: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                    self.results[row["key"]] = row
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.skipped_lines += 1

    def __contains__(self, key: str) -> bool:
        return key in self.results

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.results.get(key)
        return None if row is None else row.get("result")

    def append(self, key: str, kind: str, label: str, result: dict[str, Any]) -> None:
        row = {"key": key, "kind": kind, "label": label, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "result": result}
        append_jsonl(self.path, [row])
        self.results[key] = row
