"""`basefuse report RUN_DIR`: rebuild the report of an experiment run from its results.jsonl."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        run_dir: Path = typer.Argument(..., help="Run directory holding results.jsonl (and experiment.yaml)."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Report folder (default: RUN_DIR/report)."),
        force: bool = typer.Option(False, "--force", help="Replace --out even if it is not a previous report."),
        n_boot: int = typer.Option(2000, "--n-boot", min=100, help="Bootstrap resamples for the 95% CIs."),
        seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap (same seed, same CIs)."),
    ) -> None:
        """Tables (paper Tables 1-3), gains with 95% CIs, plots; writes report.md/.html, results.csv/.json."""
        from rich.console import Console

        from basefuse.experiments.rundir import read_run_dir
        from basefuse.reports.build import build_report, terminal_summary

        inside = out is None or out.resolve().is_relative_to(run_dir.resolve())
        with read_run_dir(run_dir, writes_inside=inside):  # never race a running experiment's writes
            paths = build_report(run_dir, out, force=force, n_boot=n_boot, seed=seed)
        console = Console()
        console.print(terminal_summary(paths.summary))
        console.print(f"report: {paths.html}", soft_wrap=True, highlight=False)
