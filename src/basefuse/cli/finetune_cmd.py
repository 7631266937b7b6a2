"""`basefuse finetune`: finetune a base on one task with one seed and report test metrics."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from basefuse.cli import output

if TYPE_CHECKING:
    from rich.table import Table


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune_cmd(
        model: str = typer.Option(..., "--model", "-m", help="Built-in model (minilm), a model folder or a hub id."),
        task: str = typer.Option(..., "--task", "-t",
                                 help="Built-in task name, a data file (CSV/TSV/JSONL/Parquet) or hf:NAME (optionally hf:NAME/CONFIG)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for metrics.json (and model/ with --save)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the head init, dropout and batch order."),
        save: bool = typer.Option(False, "--save", help="Also write the finetuned model (safetensors, model card) "
                                                        "to OUT/model."),
        lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default 2e-4)."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Examples per forward pass (default 32)."),
        grad_accum: Optional[int] = typer.Option(
            None, "--grad-accum", help="Forward passes per optimiser step; effective batch = batch size x N (1)."),
        epochs: Optional[float] = typer.Option(None, "--epochs", help="Epochs to train (default 3), but at least "
                                                                      "--min-steps steps."),
        min_steps: Optional[int] = typer.Option(
            None, "--min-steps", help="Optimiser steps a run lasts at least, so small training sets converge "
                                      "(default 100; 0: epochs only). Early stopping may end any run sooner."),
        max_length: Optional[int] = typer.Option(None, "--max-length", help="Truncate inputs to N tokens (default 64)."),
        weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay (default 0)."),
        warmup_ratio: Optional[float] = typer.Option(None, "--warmup-ratio", help="Warm-up share of steps (0.06)."),
        max_grad_norm: Optional[float] = typer.Option(
            None, "--max-grad-norm", help="Clip the gradient norm to N (default 1.0, as the HF Trainer); 0: no clipping."),
        bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16",
                                            help="bf16 autocast on a GPU that supports it (default on; never on CPU)."),
        max_train: Optional[int] = typer.Option(None, "--max-train", help="Subsample train to N (stratified)."),
        max_eval: Optional[int] = typer.Option(None, "--max-eval",
                                               help="Validate on a fixed random N examples (default: all)."),
        max_test: Optional[int] = typer.Option(None, "--max-test",
                                               help="Test on a fixed random N examples (default: all)."),
        eval_every: Optional[int] = typer.Option(
            None, "--eval-every", help="Validate every N optimiser steps (default: 10 times per run)."),
        patience: Optional[int] = typer.Option(None, "--patience", help="Evaluations without gain before stopping (3)."),
        text_col: str = typer.Option("text", "--text-col", help="Text column of a data file."),
        label_col: str = typer.Option("label", "--label-col", help="Label column of a data file."),
        pair_col: Optional[str] = typer.Option(None, "--pair-col", help="Second-text column for sentence pairs."),
        device: Optional[str] = typer.Option(None, "--device", help="auto (default), cpu, cuda or cuda:N."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                              help="CPU threads for torch (default: every core); e.g. 1 each "
                                                   "for two finetunes side by side on 2 cores."),
        force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
        push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", metavar="REPO",
                                                  help="With --save: then upload OUT/model (with its model card) to "
                                                       "this Hub model repo (org/name; created if missing). Token: "
                                                       "HF_TOKEN or `hf auth login`."),
        private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repo private."),
    ) -> None:
        """Finetune MODEL on TASK (AdamW, linear warm-up, early stopping on validation) and test it once.

        Training length adapts to the data: --epochs epochs, but at least --min-steps optimiser steps.

        Validation 10 times per run (or every --eval-every steps); stops after --patience validations without gain.
        """
        from pydantic import ValidationError

        from basefuse.errors import BasefuseError
        from basefuse.finetuning.config import CLI_FLAGS, FinetuneConfig
        from basefuse.io import check_output_path

        overrides = {"learning_rate": lr, "batch_size": batch_size, "grad_accum": grad_accum, "max_epochs": epochs,
                     "min_steps": min_steps, "max_length": max_length, "weight_decay": weight_decay,
                     "warmup_ratio": warmup_ratio, "bf16": bf16, "max_train": max_train, "max_eval": max_eval,
                     "max_test": max_test, "eval_every": eval_every, "patience": patience}
        given = {k: v for k, v in overrides.items() if v is not None}
        if max_grad_norm is not None:  # 0 turns clipping off, which the config spells None
            given["max_grad_norm"] = max_grad_norm if max_grad_norm != 0 else None
        if seed < 0:
            raise BasefuseError(f"bad option --seed={seed}: must be >= 0")
        try:
            config = FinetuneConfig(**given)
        except ValidationError as e:
            err = e.errors()[0]
            field = str(err["loc"][0])
            raise BasefuseError(f"bad option {CLI_FLAGS.get(field, field)}={err.get('input')!r} ({field}): "
                                f"{err['msg']}") from None
        if save and out is None:
            raise BasefuseError("--save needs --out FOLDER to write the model to")
        if push_to_hub and not save:
            raise BasefuseError("--push-to-hub needs --save (and --out): it uploads the saved model")
        if private and not push_to_hub:
            raise BasefuseError("--private only applies with --push-to-hub REPO")
        if push_to_hub:  # a missing token or a bad repo id is said before training, not after it
            from basefuse.hub.push import check_push_target

            check_push_target(push_to_hub)
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
                           threads=threads, progress=output.progress(not no_progress), force=force,
                           repo_id=push_to_hub)
        if output.human():
            _print_metrics(metrics, out)
        url = None
        if push_to_hub:
            from basefuse.hub.push import push_folder

            url = push_folder(out / "model", push_to_hub, private=private,
                              message=f"basefuse finetune: {metrics['model']} on {metrics['task']}, seed {seed}")
            if output.human():
                typer.echo(f"pushed {out / 'model'} to {push_to_hub} ({url})")
        output.result(metrics | ({"pushed": url} if push_to_hub else {}))


def split_table(m: dict, title: str) -> "Table":
    """Validation and test metrics of a finetune's or a probe's record (the same format) as a rich table."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("split", "n", "accuracy", "macro-F1"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split in ("validation", "test"):
        s = m[split]
        table.add_row(split, str(s["n"]), f"{s['accuracy']:.4f}", f"{s['macro_f1']:.4f}")
    return table


def _print_metrics(m: dict, out: Optional[Path]) -> None:
    from rich.console import Console

    console = Console()
    console.print(split_table(m, f"{m['task']} ← {m['model']} (seed {m['seed']})"))
    stop = "early stop" if m["stopped_early"] else "full length"
    console.print(f"steps {m['steps']} (best {m['best_step']}, {stop}), train {m['n']['train']} examples, "
                  f"{m['train_samples_per_s']:.1f} samples/s, wall {m['wall_time_s']:.1f}s on {m['device']}")
    if out is not None:
        console.print(f"wrote {out / 'metrics.json'}" + (f" and {out / 'model'}" if (out / "model").exists() else ""))
