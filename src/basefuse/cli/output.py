"""What a command prints, set once for the whole CLI by the root options `--quiet` and `--json`.

- default: tables, summaries and progress for a person;
- `--quiet`: nothing but errors and warnings (the exit code says how it went), no progress;
- `--json`: one JSON document on stdout, the command's result, and nothing else there; no progress.
Errors stay one line on stderr with their exit code in every mode.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Mode:
    quiet: bool = False
    json: bool = False


MODE = Mode()


def set_mode(quiet: bool, as_json: bool) -> None:
    MODE.quiet, MODE.json = quiet, as_json


def human() -> bool:
    """Whether to print for a person (neither --quiet nor --json)."""
    return not (MODE.quiet or MODE.json)


def progress(wanted: bool = True) -> bool:
    """A progress display only for a person who did not turn it off."""
    return wanted and human()


def result(data: Any) -> bool:
    """Print `data` as the JSON result if --json; returns whether it did (the caller then prints nothing else)."""
    if not MODE.json:
        return False
    import typer

    typer.echo(json.dumps(data, indent=2, default=str))
    return True
