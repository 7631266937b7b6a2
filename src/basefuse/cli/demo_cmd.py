"""`basefuse demo`: the built-in experiment on the offline MiniLM model and the 9 built-in tasks."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from basefuse.cli.executor_options import Device, ExecutorName, GpusPerJob, RayAddress, Threads, Workers


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        full: bool = typer.Option(False, "--full", help="The full suite (configs/paper.yaml): all 9 targets, "
                                                         "5 seeds, weight-decay ablation; for a GPU or a long run."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default runs/demo or "
                                                                      "runs/paper)."),
        executor: ExecutorName = "local",
        workers: Workers = 1,
        threads: Threads = None,
        device: Device = None,
        ray_address: RayAddress = None,
        gpus_per_job: GpusPerJob = 0.0,
        force: bool = typer.Option(False, "--force", help="Reuse a run directory made by a different config."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress display (see `experiment`)."),
    ) -> None:
        """Run the built-in experiment end to end: source finetunes, fusion, target finetunes, report.

        Run again, it reuses every finished job.
        """
        from basefuse.cli.experiment_cmd import run_and_print
        from basefuse.experiments.config import builtin_config_path

        name = "paper" if full else "demo"
        run_and_print(builtin_config_path(name), out or Path("runs") / name, force=force, executor=executor,
                      workers=workers, device=device, dry_run=False, ray_address=ray_address,
                      gpus_per_job=gpus_per_job, threads=threads, progress=not no_progress)
