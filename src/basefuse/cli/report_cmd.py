"""`basefuse report RUN_DIR`: rebuild the report of an experiment run from its results.jsonl."""
from __future__ import annotations

from pathlib import Path

import typer

from basefuse.cli import output


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        run_dir: Path = typer.Argument(..., help="Run directory holding results.jsonl (and experiment.yaml)."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Report folder (default: RUN_DIR/report)."),
        force: bool = typer.Option(False, "--force", help="Replace --out even if it is not a previous report (never "
                                   "a folder holding or inside the run's own files, its base model, data or the "
                                   "cache)."),
        exclude: list[str] | None = typer.Option(
            None, "--exclude", help="Leave out runs with FIELD=VALUE (e.g. condition=intertrained, n_fused=1); "
                                    "repeatable; counted in the planned-vs-finished table."),
    ) -> None:
        """Planned vs finished, the confirmatory claims C1-C5 with verdicts, exploratory tables (95% CIs, effect sizes),
        plots; report.md/.html and CSV/JSON exports."""
        from rich.console import Console

        from basefuse.errors import BasefuseError
        from basefuse.experiments.plan_record import PLAN, rebuild_planned_runs
        from basefuse.experiments.rundir import read_run_dir
        from basefuse.reports.build import CONFIG, build_report, terminal_summary

        planned = None
        if not (run_dir / PLAN).is_file() and (run_dir / CONFIG).is_file():
            # Runs older than plan.json: the planned grid follows from the config alone.
            try:
                planned = rebuild_planned_runs(run_dir / CONFIG) | {"source": f"rebuilt from {CONFIG} (no {PLAN})"}
            except BasefuseError as e:  # the report says so; a missing plan is no reason to refuse one
                planned = {"unavailable": f"no {PLAN}, and the plan cannot be rebuilt from {CONFIG} ({e})"}
        inside = out is None or out.resolve().is_relative_to(run_dir.resolve())
        with read_run_dir(run_dir, writes_inside=inside):  # never race a running experiment's writes
            paths = build_report(run_dir, out, force=force, exclude=exclude, planned=planned)
        if output.MODE.json:
            import json

            output.result({"html": str(paths.html), "markdown": str(paths.markdown), "csv": str(paths.csv),
                           "figures": [str(f) for f in paths.figures], "warnings": paths.warnings,
                           "report": json.loads(paths.json.read_text(encoding="utf-8"))})
            return
        if output.human():
            console = Console()
            console.print(terminal_summary(paths.summary, paths.completeness))
            console.print(f"report: {paths.html}", soft_wrap=True, highlight=False)
