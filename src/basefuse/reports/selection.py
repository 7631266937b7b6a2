"""The selection section of the report: what `selection:` ranked and chose, from RUN/selection.json (pure
renderers). The probe scores here chose the set; they are no evidence about the targets (disjoint tasks)."""
from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from basefuse.experiments.selection import SELECTION_FILE  # written when the run selects


def read_selection(run_dir: str | Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(run_dir) / SELECTION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pools"), list) else None


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def summary(sel: Mapping[str, Any]) -> str:
    return (f"Selection ({sel['strategy']}, {sel['method']} fusion) on probe task(s) {', '.join(sel['probe_tasks'])} "
            f"with probe seed(s) {sel['probe_seeds']}, {sel['metric']} in points: {sel['rule']}. One candidate pool "
            "per group of targets (a target's own model, and every candidate trained on a probe task, left out).")


def tables(sel: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per pool: (title, header, rows) of its greedy curve, the ranking first (step 1 is the best single)."""
    scores = sel.get("candidate_scores", {})
    out = []
    for p in sel["pools"]:
        title = (f"Targets {', '.join(p['targets'])}: ranking "
                 + ", ".join(f"{c} ({_pct(scores[c])})" for c in p["ranking"] if c in scores)
                 + f"; best single {p['best_single']}; chosen set {', '.join(p['chosen'])}")
        rows = [[str(i), s["candidate"], "+".join(s["members"]), _pct(s["score"]), "yes" if s["accepted"] else "no"]
                for i, s in enumerate(p["curve"], 1)]
        out.append((title, ["step", "candidate tried", "set", "probe score", "kept"], rows))
    return out


def selection_markdown(sel: Mapping[str, Any]) -> str:
    lines = ["## Fusion-set selection", "", summary(sel), ""]
    for title, header, rows in tables(sel):
        lines += [f"**{title}.**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                  *("| " + " | ".join(r) + " |" for r in rows), ""]
    return "\n".join(lines) + "\n"


def selection_html(sel: Mapping[str, Any]) -> str:
    e = html.escape
    out = f"<h2>Fusion-set selection</h2><p>{e(summary(sel))}</p>"
    for title, header, rows in tables(sel):
        out += (f"<p><b>{e(title)}.</b></p><table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header)
                + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                                                   for r in rows) + "</tbody></table>")
    return out + "\n"
