"""`basefuse finetune`: finetune a base on one task with one seed and report test metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune_cmd(
        model: str = typer.Option(..., "--model", "-m", help="Built-in model (minilm), a model folder or a hub id."),
        task: str = typer.Option(..., "--task", "-t",
                                 help="Built-in task name, a data file (CSV/TSV/JSONL/Parquet) or hf:NAME (optionally hf:NAME/CONFIG)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for metrics.json (and model/ with --save)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the head init, dropout and batch order."),
        save: bool = typer.Option(False, "--save", help="Also write the finetuned model (safetensors) to OUT/model."),
        lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default 1e-4)."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Train batch size (default 32)."),
        epochs: Optional[float] = typer.Option(None, "--epochs", help="Maximum epochs (default 3)."),
        max_length: Optional[int] = typer.Option(None, "--max-length", help="Truncate inputs to N tokens (default 64)."),
        weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay (default 0)."),
        warmup_ratio: Optional[float] = typer.Option(None, "--warmup-ratio", help="Warm-up share of steps (0.06)."),
        max_train: Optional[int] = typer.Option(None, "--max-train", help="Subsample train to N (stratified)."),
        eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Validate every N steps (default 50)."),
        patience: Optional[int] = typer.Option(None, "--patience", help="Evaluations without gain before stopping (3)."),
        text_col: str = typer.Option("text", "--text-col", help="Text column of a data file."),
        label_col: str = typer.Option("label", "--label-col", help="Label column of a data file."),
        pair_col: Optional[str] = typer.Option(None, "--pair-col", help="Second-text column for sentence pairs."),
        device: Optional[str] = typer.Option(None, "--device", help="auto (default), cpu, cuda or cuda:N."),
        force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    ) -> None:
        """Finetune MODEL on TASK (AdamW, linear warm-up, early stopping on validation) and test it once."""
        from pydantic import ValidationError

        from basefuse.errors import BasefuseError
        from basefuse.finetuning.config import FinetuneConfig
        from basefuse.io import check_output_path

        overrides = {"learning_rate": lr, "batch_size": batch_size, "max_epochs": epochs, "max_length": max_length,
                     "weight_decay": weight_decay, "warmup_ratio": warmup_ratio, "max_train": max_train,
                     "eval_every": eval_every, "patience": patience}
        try:
            config = FinetuneConfig(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as e:
            err = e.errors()[0]
            raise BasefuseError(f"bad option {err['loc'][0]}={err.get('input')!r}: {err['msg']}") from None
        if save and out is None:
            raise BasefuseError("--save needs --out FOLDER to write the model to")
        from basefuse.data.api import load_task
        from basefuse.finetuning.api import finetune
        from basefuse.models import resolve_model

        model_path = Path(resolve_model(model))
        if out is not None:  # fail before loading data; finetune() re-checks when it writes
            inputs = [p for p in (model_path, Path(task).expanduser()) if p.exists()]
            check_output_path(out, force=force, protected=inputs)

        loaded = load_task(task, max_train=config.max_train, text_col=text_col, label_col=label_col,
                           pair_col=pair_col)
        metrics = finetune(model, loaded, config=config, seed=seed, out=out, save=save, device=device,
                           progress=not no_progress, force=force)
        _print_metrics(metrics, out)


def _print_metrics(m: dict, out: Optional[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{m['task']} ← {m['model']} (seed {m['seed']})")
    for col in ("split", "n", "accuracy", "macro-F1"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split in ("validation", "test"):
        s = m[split]
        table.add_row(split, str(s["n"]), f"{s['accuracy']:.4f}", f"{s['macro_f1']:.4f}")
    console = Console()
    console.print(table)
    stop = "early stop" if m["stopped_early"] else "max epochs"
    console.print(f"steps {m['steps']} (best {m['best_step']}, {stop}), train {m['n']['train']} examples, "
                  f"{m['train_samples_per_s']:.1f} samples/s, wall {m['wall_time_s']:.1f}s on {m['device']}")
    if out is not None:
        console.print(f"wrote {out / 'metrics.json'}" + (f" and {out / 'model'}" if (out / "model").exists() else ""))
