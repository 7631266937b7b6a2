"""Build the report folder of a run directory: the I/O edge around `stats`, `plots` and `render`."""
from __future__ import annotations

import dataclasses

import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from basefuse.errors import BasefuseError
from basefuse.io import atomic_output_dir, cache_dir, check_output_path, write_json
from basefuse.experiments.failures import read_failures
from basefuse.experiments.plan_record import read_plan
from basefuse.reports import confirmatory, leakage, render
from basefuse.reports.completeness import Completeness, completeness
from basefuse.reports.load import read_results
from basefuse.experiments.records import evaluation_of
from basefuse.reports.summary import PRETRAINED, Summary, summarize


@dataclass(frozen=True)
class Evaluations:
    """Which evaluation a report shows, the others the run has, and every record (for their agreement)."""

    shown: str
    others: list[str]
    records: list

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table

RESULTS = "results.jsonl"
CONFIG = "experiment.yaml"
STORE = "store.jsonl"
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
    completeness: Completeness | None = None


def _stderr_warning(msg: str) -> None:
    print(f"basefuse: warning: {msg}", file=sys.stderr)


def parse_exclude(items: list[str] | None) -> list[tuple[str, str]]:
    """`FIELD=VALUE` filters (e.g. `condition=intertrained`, `n_fused=1`): runs matching any are left out."""
    from basefuse.experiments.records import RunRecord

    out = []
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or name not in RunRecord.model_fields:
            raise BasefuseError(f"--exclude {item!r}: expected FIELD=VALUE with FIELD one of "
                                f"{', '.join(RunRecord.model_fields)}")
        out.append((name, value))
    return out


def _matches(record, filters: list[tuple[str, str]]) -> bool:
    return any(str(getattr(record, name)) == value or (value in ("None", "null") and getattr(record, name) is None)
               for name, value in filters)


def _read_config(run_dir: Path) -> dict:
    try:
        import yaml

        cfg = yaml.safe_load((run_dir / CONFIG).read_text(encoding="utf-8"))
    except Exception:  # absent or unreadable config: the report only shows it
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _no_results_yet(run_dir: Path) -> BasefuseError | None:
    """A run directory whose experiment has not finished a target finetune yet: say so, not "run it first"."""
    from basefuse.experiments.rundir import run_in_progress

    if not any((run_dir / name).exists() for name in ("run.json", "plan.json", STORE)):
        return None
    if run_in_progress(run_dir):
        return BasefuseError(f"{run_dir} is a run in progress with no results yet: report again once its first "
                             "target finetunes have finished")
    return BasefuseError(f"{run_dir} is a run with no results yet (no target finetune finished): resume it with "
                         "`basefuse experiment CONFIG --out RUN_DIR`, then report")


def _load(run_dir: Path, warn, filters, stats_options, evaluation: str | None = None):
    if not run_dir.is_dir():
        raise BasefuseError(f"run directory {run_dir} not found or not a folder: pass the folder "
                            "`basefuse experiment` wrote")
    early = _no_results_yet(run_dir)
    if early is not None and not (run_dir / RESULTS).is_file():
        raise early
    records, warnings = read_results(run_dir / RESULTS)
    if early is not None and not records:
        raise early
    for w in warnings:
        if warn:
            warn(w)
    from basefuse.reports.evaluations import evaluations_in

    present = evaluations_in(records)
    shown = evaluation or (present[0] if present else "finetune")
    if present and shown not in present:
        raise BasefuseError(f"{run_dir / RESULTS} has no {shown} runs; it has: {', '.join(present)}")
    every = records
    records = [r for r in records if evaluation_of(r) == shown]  # one evaluation's tables at a time
    excluded = [r for r in records if _matches(r, filters)]
    records = [r for r in records if not _matches(r, filters)]
    if not any(r.condition == PRETRAINED for r in records):
        raise BasefuseError(f"{run_dir / RESULTS} has no pretrained runs: gains need the pretrained base as "
                            "reference; rerun the experiment with the pretrained condition")
    if not any(r.ablation == "main" for r in records):
        raise BasefuseError(f"{run_dir / RESULTS} has no main-grid runs (ablation 'main'): nothing to tabulate")
    cfg = _read_config(run_dir)
    if stats_options.get("weight_decay") is None:
        stats_options["weight_decay"] = _first_configured_weight_decay(cfg, records)
    if stats_options.get("primary") is None:
        stats_options["primary"] = _configured_primary(cfg)
    if stats_options.get("plan") is None:
        stats_options["plan"] = _configured_plan(cfg, stats_options["primary"])
    evals = Evaluations(shown, [e for e in present if e != shown], every)
    return summarize(records, **stats_options), records, excluded, warnings, evals


def _configured_plan(cfg: dict, primary: tuple[str, str] | None) -> confirmatory.Plan | None:
    """The config's confirmatory plan; None (the paper's defaults with C1 = `primary`) when experiment.yaml is
    missing or no longer parses."""
    from basefuse.experiments.config import parse_experiment_config

    if not cfg:
        return None
    try:
        return confirmatory.plan_from_config(parse_experiment_config(cfg))
    except BasefuseError:
        return None


def _configured_primary(cfg: dict) -> tuple[str, str] | None:
    """The config's primary comparison (its `primary`, else its first fusion method over all sources vs
    pretrained); None, i.e. the default, when experiment.yaml is missing or no longer parses."""
    from basefuse.experiments.config import parse_experiment_config

    if not cfg:
        return None
    try:
        return parse_experiment_config(cfg).primary_comparison()
    except BasefuseError:
        primary = cfg.get("primary")
        return tuple(map(str, primary)) if isinstance(primary, list) and len(primary) == 2 else None


def _first_configured_weight_decay(cfg: dict, records: list) -> float | None:
    """Tables use the config's first weight decay (the one the ablations ran at); else the lowest."""
    try:
        wds = [float(w) for w in cfg["weight_decays"]]
    except (KeyError, TypeError, ValueError):
        return None
    present = {r.weight_decay for r in records if r.ablation == "main"}
    return next((w for w in wds if w in present), None)


def _jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file; unreadable lines (a crash's half line) are skipped."""
    import json

    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def run_completeness(run_dir: Path, records: list, excluded: list, planned: dict | None,
                     evaluation: str = "finetune") -> Completeness | None:
    """Planned vs finished (of one evaluation), from `planned` (e.g. rebuilt from the config) or RUN_DIR/plan.json."""
    if planned is None:
        planned = read_plan(run_dir)
        if planned is None:
            return None
        planned = planned | {"source": "plan.json"}
    if "runs" not in planned:  # {"unavailable": why}: the CLI could not rebuild it
        return None
    failures = read_failures(run_dir)
    runs = [r for r in planned["runs"] if evaluation_of(r) == evaluation]
    return completeness(runs, records, excluded, plan_source=planned.get("source", "given"),
                        store_rows=_jsonl(run_dir / STORE), failures=failures)


# What a run folder holds besides its report: never inside an output folder that --force may replace.
RUN_FILES = (RESULTS, CONFIG, STORE, "jobs", "plan.json", "run.json", "leakage.json", "failures.json", ".lock",
             "selection.json", "ranking.json")


def _run_inputs(run_dir: Path) -> list[Path]:
    """The run's own files and folders, the local base model and data files its config names, and the cache
    (where built-in models and tasks live)."""
    paths = [run_dir / name for name in RUN_FILES] + [cache_dir()]
    cfg = _read_config(run_dir)
    refs = [cfg.get("base_model")]
    for group in ("families", "held_out"):
        for tasks in (cfg.get(group) or {}).values() if isinstance(cfg.get(group), dict) else []:
            refs += [t.get("spec") if isinstance(t, dict) else t for t in tasks or []]
    for ref in refs:
        if isinstance(ref, str) and ref and Path(ref).expanduser().exists():
            paths.append(Path(ref).expanduser())
    return [p for p in paths if p.exists()]


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, *, force: bool = False,
                 warn: Callable[[str], None] | None = _stderr_warning, exclude: list[str] | None = None,
                 planned: dict | None = None, evaluation: str | None = None, **stats_options) -> ReportPaths:
    """Write report.md, report.html, results.csv, results.json and PNG figures (default RUN_DIR/report).

    `evaluation`: whose runs the tables show, "finetune" or "linear_probe" (default: finetune if the run has it).

    The output is replaced atomically. An existing folder is replaced only if it holds a
    previous basefuse report (it is derived data) or `force` is set.
    """
    run_dir = Path(run_dir)
    filters = parse_exclude(exclude)
    summary, records, excluded, warnings, evals = _load(run_dir, warn, filters, stats_options, evaluation)
    comp = run_completeness(run_dir, records, excluded, planned, evals.shown)
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    config = run_dir / CONFIG
    protected = _run_inputs(run_dir)
    check_output_path(out, force=True, protected=protected)
    if out.exists() and not (force or (out / MARKER).exists() or (out.is_dir() and not any(out.iterdir()))):
        raise BasefuseError(f"output {out} exists and is not a basefuse report: choose another --out or pass --force")
    notes = list(warnings)
    if summary.unpaired:
        notes.append(f"{summary.unpaired} run(s) had no pretrained run with the same target, seed and weight "
                     "decay and are left out of the gains.")
    notes.append(f"{summary.n_records} runs read from {RESULTS}; tables use weight decay {summary.weight_decay:g}.")
    if filters:
        notes.append(f"{len(excluded)} run(s) left out by --exclude " + ", ".join(exclude or []) + ".")
    if comp is None:
        why = (planned or {}).get("unavailable", "no plan.json in the run directory")
        notes.append(f"Plan unknown ({why}): the report cannot say which planned runs are missing.")
    else:
        for label, n in comp.reproduced.items():
            notes.append(f"Input '{label}' was produced {n} times (e.g. retrained in another device call): the "
                         "runs built on it do not all share one input.")
        if comp.reproduced:
            notes.append(f"{len(comp.reproduced)} input job(s) were produced more than once.")
        notes += [f"Failed job: {f}" for f in comp.failures]

    from basefuse.reports import plots

    with atomic_output_dir(out, force=True, protected=protected) as tmp:
        figures = _claim_figures(summary, tmp)
        figures += [render.Figure(d.title, tmp / d.filename, d.caption)
                    for d in plots.report_figures(summary, tmp, records)]
        link = os.path.relpath(run_dir.resolve() / RESULTS, out.resolve()).replace(os.sep, "/")
        inp = render.ReportInputs(summary, figures, config.read_text(encoding="utf-8", errors="replace")
                                  if config.exists() else None, notes, str(run_dir), comp, link)
        leak = leakage.read_leakage(run_dir)  # the overlap table the plan wrote; absent in older runs
        md, page = render.render_markdown(inp), render.render_html(inp)
        if leak is not None:
            md, page = md + "\n" + leakage.leakage_markdown(leak), page.replace(
                "</body>", leakage.leakage_html(leak) + "</body>", 1)
        if evals.others or evals.shown != "finetune":
            from basefuse.reports import evaluations

            args = (evals.shown, evals.others, evals.records, summary.weight_decay)
            md, page = md + "\n" + evaluations.section_markdown(*args), page.replace(
                "</body>", evaluations.section_html(*args) + "</body>", 1)
        (tmp / "report.md").write_text(md, encoding="utf-8")
        (tmp / "report.html").write_text(page, encoding="utf-8")
        (tmp / "results.csv").write_text(render.render_csv(records), encoding="utf-8")
        write_json(tmp / "results.json", render.runs_json(records))
        (tmp / "claims.csv").write_text(render.claims_csv(summary), encoding="utf-8")
        write_json(tmp / "claims.json", render.claims_json(summary))
        (tmp / "comparisons.csv").write_text(render.comparisons_csv(summary), encoding="utf-8")
        (tmp / MARKER).write_text("derived from results.jsonl; safe to delete or regenerate\n", encoding="utf-8")
    return ReportPaths(out, out / "report.md", out / "report.html", out / "results.csv", out / "results.json",
                       [out / f.path.name for f in figures], warnings, summary, comp)


def _claim_figures(summary: Summary, folder: Path) -> list[render.Figure]:
    """One figure per measured confirmatory claim, `claim-<id>.png`, with its caption. C3's values are fused's
    per-target gains, not per-target ratios: its figure shows the estimate and interval only, and the spread figure
    shows the gains themselves."""
    from basefuse.reports import plots

    out = []
    for c in summary.claims:
        drawn = dataclasses.replace(c, values={}) if c.id == "C3" else c
        path = folder / plots.claim_filename(c)
        if plots.plot_claim(drawn, path):
            caption = plots.claim_caption(drawn) + (" Per-target gains: the spread figure below." if c.id == "C3"
                                                    else "")
            out.append(render.Figure(f"{c.id} {c.title}: {c.measure}", path, caption))
    return out


def table1_rich(summary: Summary) -> "Table":
    """Table 1 as a rich Table for the terminal."""
    return _rich(render.table1(summary))


def _rich(t: render.TableModel) -> "Table":
    from rich.markup import escape
    from rich.table import Table

    # Every string is escaped: rich would read a label such as `fused[ties] (all)` as markup and drop `[ties]`.
    table = Table(title=escape(t.title))
    for i, h in enumerate(t.header):
        table.add_column(escape(h), justify="left" if i == 0 else "right")
    for row in t.rows:
        table.add_row(*map(escape, row))
    return table


def terminal_summary(summary: Summary, comp: Completeness | None = None) -> "Group":
    """Planned vs finished, Table 1 and the headline: what `basefuse report` and `basefuse demo` print."""
    from rich.console import Group
    from rich.text import Text

    tables = ([_rich(render.completeness_table(comp))] if comp else []) + [_rich(render.claims_terminal_table(summary)),
                                                                          table1_rich(summary),
                                                                          _rich(render.gain_table(summary))]
    return Group(*tables, Text(render.headline(summary, comp), style="bold"))


def summary_text(run_dir: str | Path) -> str:
    """The terminal summary of RUN_DIR as plain text (used after a run; warnings were shown already)."""
    run_dir = Path(run_dir)
    summary, records, excluded, _, evals = _load(run_dir, None, [], {})
    return table1_text(summary, run_completeness(run_dir, records, excluded, None, evals.shown))


def table1_text(summary: Summary, comp: Completeness | None = None) -> str:
    """The terminal summary as plain text (no colour), for logs and tests."""
    from rich.console import Console

    console = Console(width=200, color_system=None, file=io.StringIO())
    console.print(terminal_summary(summary, comp))
    return console.file.getvalue()
