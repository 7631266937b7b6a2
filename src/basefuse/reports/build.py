"""Build the report folder of a run directory: the I/O edge around `stats`, `plots` and `render`."""
from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from basefuse.errors import BasefuseError
from basefuse.io import atomic_output_dir, check_output_path, write_json
from basefuse.reports import leakage, render
from basefuse.reports.load import read_results
from basefuse.reports.stats import PRETRAINED, Summary, summarize

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table

RESULTS = "results.jsonl"
CONFIG = "experiment.yaml"
MARKER = ".basefuse-report"  # lets a rerun replace a previous report, and nothing else


@dataclass
class ReportPaths:
    out_dir: Path
    markdown: Path
    html: Path
    csv: Path
    json: Path
    figures: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: Summary | None = None  # for printing `table1_rich(paths.summary)` without re-reading


def _stderr_warning(msg: str) -> None:
    print(f"basefuse: warning: {msg}", file=sys.stderr)


def load_summary(run_dir: str | Path, *, warn: Callable[[str], None] | None = _stderr_warning,
                 **stats_options) -> tuple[Summary, list, list[str]]:
    """Read and summarise RUN_DIR/results.jsonl; returns (summary, records, warnings)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BasefuseError(f"run directory {run_dir} not found or not a folder: pass the folder "
                            "`basefuse experiment` wrote")
    records, warnings = read_results(run_dir / RESULTS)
    for w in warnings:
        if warn:
            warn(w)
    if not any(r.condition == PRETRAINED for r in records):
        raise BasefuseError(f"{run_dir / RESULTS} has no pretrained runs: gains need the pretrained base as "
                            "reference; rerun the experiment with the pretrained condition")
    if not any(r.ablation == "main" for r in records):
        raise BasefuseError(f"{run_dir / RESULTS} has no main-grid runs (ablation 'main'): nothing to tabulate")
    if stats_options.get("weight_decay") is None:
        stats_options["weight_decay"] = _first_configured_weight_decay(run_dir, records)
    return summarize(records, **stats_options), records, warnings


def _first_configured_weight_decay(run_dir: Path, records: list) -> float | None:
    """Tables use the config's first weight decay (the one the ablations ran at); else the lowest."""
    try:
        import yaml

        cfg = yaml.safe_load((run_dir / CONFIG).read_text(encoding="utf-8"))
        wds = [float(w) for w in cfg["weight_decays"]]
    except Exception:  # absent or unreadable config: the report only shows it
        return None
    present = {r.weight_decay for r in records if r.ablation == "main"}
    return next((w for w in wds if w in present), None)


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, *, force: bool = False,
                 warn: Callable[[str], None] | None = _stderr_warning, **stats_options) -> ReportPaths:
    """Write report.md, report.html, results.csv, results.json and PNG figures (default RUN_DIR/report).

    The output is replaced atomically. An existing folder is replaced only if it holds a
    previous basefuse report (it is derived data) or `force` is set.
    """
    run_dir = Path(run_dir)
    summary, records, warnings = load_summary(run_dir, warn=warn, **stats_options)
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    config = run_dir / CONFIG
    protected = [run_dir / RESULTS] + ([config] if config.exists() else [])
    check_output_path(out, force=True, protected=protected)
    if out.exists() and not (force or (out / MARKER).exists() or (out.is_dir() and not any(out.iterdir()))):
        raise BasefuseError(f"output {out} exists and is not a basefuse report: choose another --out or pass --force")
    notes = list(warnings)
    if summary.unpaired:
        notes.append(f"{summary.unpaired} run(s) had no pretrained run with the same target, seed and weight "
                     "decay and are left out of the gains.")
    notes.append(f"{summary.n_records} runs read from {RESULTS}; tables use weight decay {summary.weight_decay:g}.")

    from basefuse.reports import plots

    with atomic_output_dir(out, force=True, protected=protected) as tmp:
        figures = []
        for name, title, fn in (("gains_per_target.png", "Gain over pretrained per target", plots.plot_target_gains),
                                ("gain_vs_n_models.png", "Gain vs number of models fused", plots.plot_n_models)):
            if fn(summary, tmp / name):
                figures.append(render.Figure(title, tmp / name))
        inp = render.ReportInputs(summary, figures, config.read_text(encoding="utf-8", errors="replace")
                                  if config.exists() else None, notes, str(run_dir))
        leak = leakage.read_leakage(run_dir)  # the overlap table the plan wrote; absent in older runs
        md, page = render.render_markdown(inp), render.render_html(inp)
        if leak is not None:
            md, page = md + "\n" + leakage.leakage_markdown(leak), page.replace(
                "</body>", leakage.leakage_html(leak) + "</body>", 1)
        (tmp / "report.md").write_text(md, encoding="utf-8")
        (tmp / "report.html").write_text(page, encoding="utf-8")
        (tmp / "results.csv").write_text(render.render_csv(records), encoding="utf-8")
        write_json(tmp / "results.json", render.runs_json(records))
        (tmp / MARKER).write_text("derived from results.jsonl; safe to delete or regenerate\n", encoding="utf-8")
    return ReportPaths(out, out / "report.md", out / "report.html", out / "results.csv", out / "results.json",
                       [out / f.path.name for f in figures], warnings, summary)


def table1_rich(summary: Summary) -> "Table":
    """Table 1 as a rich Table for the terminal."""
    from rich.table import Table

    t = render.table1(summary)
    table = Table(title=t.title)
    for i, h in enumerate(t.header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in t.rows:
        table.add_row(*row)
    return table


def terminal_summary(summary: Summary) -> "Group":
    """Table 1 followed by the headline sentence: what `basefuse report` and `basefuse demo` print."""
    from rich.console import Group
    from rich.text import Text

    return Group(table1_rich(summary), Text(render.headline(summary), style="bold"))


def summary_text(run_dir: str | Path) -> str:
    """Table 1 and the headline of RUN_DIR as plain text (used after a run; warnings were shown already)."""
    return table1_text(load_summary(run_dir, warn=None)[0])


def table1_text(summary: Summary) -> str:
    """Table 1 and the headline as plain text (no colour), for logs and tests."""
    from rich.console import Console

    console = Console(width=200, color_system=None, file=io.StringIO())
    console.print(terminal_summary(summary))
    return console.file.getvalue()
