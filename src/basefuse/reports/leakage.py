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

from basefuse.experiments.leakage import LEAKAGE_FILE, largest_per_target  # written at planning time

HEADER = ["target", "base", "test texts", "seen by base", "share", "from source tasks"]
NEAR_HEADER = ["near-duplicates", "near share", "near from source tasks", "base model provenance"]


def _has_near(table: Mapping[str, Any]) -> bool:
    """Tables written before near-duplicates were counted have no near columns (their rows keep the old shape)."""
    return "near_duplicate_method" in table


def read_leakage(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's overlap table, or None for a run planned before the table existed (or an unreadable one)."""
    try:
        table = json.loads((Path(run_dir) / LEAKAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return table if isinstance(table, dict) and isinstance(table.get("rows"), list) else None


def _counts(by_source: Mapping[str, int]) -> str:
    return ", ".join(f"{n} ({c})" for n, c in sorted(by_source.items()))


def leakage_rows(table: Mapping[str, Any]) -> list[list[str]]:
    """One formatted row per (target, base) pair with any overlap (exact, or near-duplicates), largest share first."""
    rows = sorted((r for r in table["rows"] if r["overlap"] or r.get("near_overlap") or r.get("provenance_unknown")),
                  key=lambda r: (-r["fraction"], -r.get("near_fraction", 0.0), r["target"], r["base"]))
    out = []
    for r in rows:
        sources = _counts(r["by_source"])
        if r.get("provenance_unknown"):
            sources = "; ".join(x for x in (sources, "provenance unknown: " + ", ".join(r["provenance_unknown"])) if x)
        row = [r["target"], r["base"], str(r["n_test"]), str(r["overlap"]), f"{r['fraction']:.2%}", sources]
        if _has_near(table):
            row += [str(r.get("near_overlap", 0)), f"{r.get('near_fraction', 0.0):.2%}",
                    _counts(r.get("near_by_source", {})), r.get("base_model_provenance", "provenance unknown")]
        out.append(row)
    return out


def _header(table: Mapping[str, Any]) -> list[str]:
    return HEADER + (NEAR_HEADER if _has_near(table) else [])


def _base_model_sentence(table: Mapping[str, Any]) -> str:
    base = table.get("base_model")
    if not isinstance(base, dict):
        return ""
    if base.get("provenance") == "made by basefuse":
        tasks = sorted({t.get("task", "?") for t in base.get("trained_on", [])})
        return (f" The base model {base.get('spec', '?')} was made by basefuse, finetuned on "
                f"{', '.join(tasks) or 'no task'}: those tasks count in every base's provenance.")
    return (f" The base model {base.get('spec', '?')}: provenance unknown (not made by basefuse, so what it was "
            "trained on before is not checked).")


def leakage_summary(table: Mapping[str, Any]) -> str:
    """Sentences: how many pairs were checked, how, against which limits, and what the base model is known to hold."""
    n = len(table["rows"])
    hit = sum(1 for r in table["rows"] if r["overlap"] or r.get("near_overlap"))
    view = f"; also as the base model's tokenizer sees them: {table['model_view']}" if table.get("model_view") else ""
    how = (f"Every target's test texts (normalised: {table.get('normalisation', '?')}{view}) were looked up in the "
           f"data of every task in each base's provenance ({table.get('source_rows_counted', 'train split')}); "
           f"the run is refused above {table['max_test_overlap']:.2%} of a test set")
    if _has_near(table):
        how += (f", or above {table['max_near_duplicate_overlap']:.2%} with a near-duplicate that is not an exact "
                f"copy ({table['near_duplicate_method']}; Jaccard >= {table['near_duplicate_jaccard']:g})")
    largest = ""
    if _has_near(table) and table["rows"]:
        largest = " Largest share per target, exact / near-duplicates: " + "; ".join(
            f"{r['target']} {r['fraction']:.2%} / {r.get('near_fraction', 0.0):.2%}"
            for r in largest_per_target(table)) + "."
    found = ("No test text occurs in any base's training data." if not hit
             else f"{hit} of {n} (target, base) pairs share test texts with the base's training data:")
    return f"{n} (target, base) pairs checked. {how}.{_base_model_sentence(table)}{largest} {found}{_unknown(table)}"


def _unknown(table: Mapping[str, Any]) -> str:
    """Bases holding a pool checkpoint whose training data was not declared: their rows prove nothing clean."""
    rows = [r for r in table["rows"] if r.get("provenance_unknown")]
    if not rows:
        return ""
    cks = sorted({c for r in rows for c in r["provenance_unknown"]})
    targets = sorted({r["target"] for r in rows})
    return (f" Provenance unknown: {len(rows)} (target, base) pairs use pool checkpoint(s) {', '.join(cks)}, whose "
            f"training data was not declared (leakage.allow_unknown); for target(s) {', '.join(targets)} those "
            "bases cannot be proven clean of the target's data, even where no declared task holds it.")


def leakage_markdown(table: Mapping[str, Any]) -> str:
    """A Markdown section for report.md."""
    lines = ["## Leakage check (by content)", "", leakage_summary(table), ""]
    rows = leakage_rows(table)
    if rows:
        lines += ["| " + " | ".join(_header(table)) + " |", "|" + "---|" * len(_header(table)),
                  *("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows), ""]
    return "\n".join(lines) + "\n"


def leakage_html(table: Mapping[str, Any]) -> str:
    """An HTML fragment for report.html (no styles of its own: the page's table style applies)."""
    e = html.escape
    out = f"<h2>Leakage check (by content)</h2><p>{e(leakage_summary(table))}</p>"
    rows = leakage_rows(table)
    if rows:
        head = "".join(f"<th>{e(c)}</th>" for c in _header(table))
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
        out += f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return out + "\n"
