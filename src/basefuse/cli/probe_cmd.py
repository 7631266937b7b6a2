"""`basefuse probe`: linear-probe a frozen base on one task with one seed and report test metrics."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from basefuse.cli import output


def register(app: typer.Typer) -> None:
    @app.command("probe")
    def probe_cmd(
        model: str = typer.Argument(..., help="Built-in model (minilm), a model folder or a hub id."),
        task: str = typer.Argument(..., help="Built-in task name, a data file (CSV/TSV/JSONL/Parquet) or hf:NAME "
                                             "(optionally hf:NAME/CONFIG)."),
        seed: int = typer.Option(0, "--seed", help="Draws the training examples when --max-train is below the "
                                                   "train size; without a budget the probe is deterministic."),
        max_train: Optional[int] = typer.Option(None, "--max-train",
                                                help="Train the probe on N examples (stratified, drawn with --seed)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for metrics.json."),
        as_json: bool = typer.Option(False, "--json", help="Print the whole metrics record as JSON."),
        max_length: Optional[int] = typer.Option(None, "--max-length", help="Truncate inputs to N tokens (default 64)."),
        pooling: Optional[str] = typer.Option(None, "--pooling", help="mean (default: mean of the last hidden states "
                                                                      "over real tokens) or cls (first token)."),
        c_grid: Optional[str] = typer.Option(None, "--c-grid", help="Comma-separated inverse regularisation "
                                                                    "strengths (default 1e-3,...,1e3: 7 values)."),
        max_iter: Optional[int] = typer.Option(None, "--max-iter", help="lbfgs iterations per fit (default 1000)."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size",
                                                 help="Examples per forward pass of feature extraction (default 64)."),
        max_eval: Optional[int] = typer.Option(None, "--max-eval",
                                               help="Validate on a fixed random N examples (default: all)."),
        max_test: Optional[int] = typer.Option(None, "--max-test",
                                               help="Test on a fixed random N examples (default: all)."),
        text_col: str = typer.Option("text", "--text-col", help="Text column of a data file."),
        label_col: str = typer.Option("label", "--label-col", help="Label column of a data file."),
        pair_col: Optional[str] = typer.Option(None, "--pair-col", help="Second-text column for sentence pairs."),
        device: Optional[str] = typer.Option(None, "--device", help="auto (default), cpu, cuda or cuda:N."),
        force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
    ) -> None:
        """Linear-probe MODEL on TASK: the frozen base's pooled features, standardised on train, and a logistic
        regression for each C of the grid; the C with the best validation accuracy (ties: the smaller C) is tested.

        Features are cached per base and task: another seed, budget or C grid of them runs no forward pass.
        """
        from pydantic import ValidationError

        from basefuse.errors import BasefuseError
        from basefuse.io import check_output_path
        from basefuse.models import resolve_model
        from basefuse.probing.config import ProbeConfig

        if seed < 0:
            raise BasefuseError(f"bad option --seed={seed}: must be >= 0")
        if max_train is not None and max_train < 2:
            raise BasefuseError(f"bad option --max-train={max_train}: give at least 2 (or leave it out for all)")
        given: dict = {k: v for k, v in {"max_length": max_length, "pooling": pooling, "max_iter": max_iter,
                                         "batch_size": batch_size, "max_eval": max_eval,
                                         "max_test": max_test}.items() if v is not None}
        if c_grid is not None:
            try:
                given["c_grid"] = [float(c) for c in c_grid.split(",") if c.strip()]
            except ValueError:
                raise BasefuseError(f"bad option --c-grid={c_grid!r}: give comma-separated numbers, "
                                    "e.g. 0.01,0.1,1") from None
        try:
            config = ProbeConfig(**given)
        except ValidationError as e:
            err = e.errors()[0]
            field = str(err["loc"][0])
            raise BasefuseError(f"bad option --{field.replace('_', '-')}={err.get('input')!r}: {err['msg']}") from None
        from basefuse.probing.probe import linear_probe, probe_task

        model_path = Path(resolve_model(model))
        if out is not None:  # fail before loading data; linear_probe() re-checks when it writes
            check_output_path(out, force=force, protected=[p for p in (model_path, Path(task).expanduser())
                                                           if p.exists()])
        loaded = probe_task(task, max_train, text_col=text_col, label_col=label_col, pair_col=pair_col)
        metrics = linear_probe(model, loaded, config=config, seed=seed, max_train=max_train, out=out,
                               device=device, force=force)
        if as_json and not output.MODE.json:
            typer.echo(json.dumps(metrics, indent=2, default=str))
        elif not output.result(metrics) and output.human():
            _print_metrics(metrics, out)


def _print_metrics(m: dict, out: Optional[Path]) -> None:
    from rich.console import Console

    from basefuse.cli.finetune_cmd import split_table

    console = Console()
    console.print(split_table(m, f"linear probe: {m['task']} ← {m['model']} (seed {m['seed']})"))
    cached = "features from the cache" if all(m["feature_cache_hits"].values()) else "features computed"
    console.print(f"C {m['chosen_c']:g} (best of {len(m['validation_curve'])} on validation), train "
                  f"{m['n']['train']} examples, {cached}, wall {m['wall_time_s']:.1f}s on {m['device']}")
    if out is not None:
        console.print(f"wrote {out / 'metrics.json'}")
