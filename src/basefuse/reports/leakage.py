"""The leakage section of the report: pure renderers of the overlap table in RUN/leakage.json.

The table is made when the experiment is planned (`basefuse.experiments.leakage.overlap_table`);
the report only shows it, so a reader sees how much of each target's test set any base had seen.
"""
from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from basefuse.experiments.leakage import LEAKAGE_FILE  # written at planning time

HEADER = ["target", "base", "test texts", "seen by base", "share", "from source tasks"]


def read_leakage(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's overlap table, or None for a run planned before the table existed (or an unreadable one)."""
    try:
        table = json.loads((Path(run_dir) / LEAKAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return table if isinstance(table, dict) and isinstance(table.get("rows"), list) else None


def leakage_rows(table: Mapping[str, Any]) -> list[list[str]]:
    """One formatted row per (target, base) pair with any overlap, largest share first."""
    rows = sorted((r for r in table["rows"] if r["overlap"]), key=lambda r: (-r["fraction"], r["target"], r["base"]))
    return [[r["target"], r["base"], str(r["n_test"]), str(r["overlap"]), f"{r['fraction']:.2%}",
             ", ".join(f"{n} ({c})" for n, c in sorted(r["by_source"].items()))] for r in rows]


def leakage_summary(table: Mapping[str, Any]) -> str:
    """One sentence: how many pairs were checked, how, and against which limit."""
    n, hit = len(table["rows"]), sum(1 for r in table["rows"] if r["overlap"])
    how = (f"Every target's test texts (normalised: {table.get('normalisation', '?')}) were looked up in the data "
           f"of every task in each base's provenance ({table.get('source_rows_counted', 'train split')}); "
           f"the run is refused above {table['max_test_overlap']:.2%} of a test set.")
    found = ("No test text occurs in any base's training data." if not hit
             else f"{hit} of {n} (target, base) pairs share test texts with the base's training data:")
    return f"{n} (target, base) pairs checked. {how} {found}"


def leakage_markdown(table: Mapping[str, Any]) -> str:
    """A Markdown section for report.md."""
    lines = ["## Leakage check (by content)", "", leakage_summary(table), ""]
    rows = leakage_rows(table)
    if rows:
        lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER),
                  *("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows), ""]
    return "\n".join(lines) + "\n"


def leakage_html(table: Mapping[str, Any]) -> str:
    """An HTML fragment for report.html (no styles of its own: the page's table style applies)."""
    e = html.escape
    out = f"<h2>Leakage check (by content)</h2><p>{e(leakage_summary(table))}</p>"
    rows = leakage_rows(table)
    if rows:
        head = "".join(f"<th>{e(c)}</th>" for c in HEADER)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
        out += f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return out + "\n"
