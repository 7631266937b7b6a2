"""`basefuse inspect`: task-vector statistics of candidate sources before fusing them."""
from __future__ import annotations

import json
from typing import Optional

import typer

from basefuse.cli import output

from basefuse.errors import BasefuseError


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_command(
        sources: list[str] = typer.Argument(..., help="Finetuned model folders or hub ids (at least 2)."),
        base: Optional[str] = typer.Option(None, "--base", help="Pretrained model; task vectors are relative "
                                                                "to it (else to the sources' mean)."),
        as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    ) -> None:
        """Per-source task-vector norm, pairwise cosine, sign conflicts, head share; flags unrelated sources."""
        from basefuse.fusion.inspect import inspect_sources

        stats = inspect_sources(sources, base=base)
        if as_json and not output.MODE.json:
            typer.echo(json.dumps(stats, indent=2))
        elif not output.result(stats) and output.human():
            _print_tables(stats)
        if stats["non_finite"]:  # after the statistics: they show which model it is
            bad = stats["non_finite"][0]
            raise BasefuseError(f"{len(stats['non_finite'])} model(s) hold NaN or Inf values, e.g. {bad['model']} "
                                f"in tensor {bad['tensor']!r}: do not fuse them; retrain or re-save them")


def _print_tables(stats: dict) -> None:
    """The statistics as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"task vectors relative to {stats['reference']}")
    for col in ("#", "source", "norm", "relative", "head share", "flag"):
        t.add_column(col)
    flagged = {f["source"]: f["reason"] for f in stats["flagged"]}
    for i, s in enumerate(stats["sources"]):
        rel = "-" if s["relative_norm"] is None else f"{s['relative_norm']:.4g}"
        t.add_row(str(i), s["source"], f"{s['task_vector_norm']:.4g}", rel, f"{s['head_share']:.2%}",
                  flagged.get(s["source"], ""))
    console.print(t)
    c = Table(title="pairwise cosine similarity of task vectors")
    c.add_column("")
    for i in range(len(stats["cosine"])):
        c.add_column(str(i))
    for i, row in enumerate(stats["cosine"]):
        c.add_row(str(i), *[f"{v:.3f}" for v in row])
    console.print(c)
    console.print(f"sign-conflict rate: {stats['sign_conflict_rate']:.2%} of body parameters where 2+ "
                  f"sources move; body parameters: {stats['body_parameters']:,}")
    if stats["flagged"]:
        console.print(f"[bold red]{len(stats['flagged'])} source(s) flagged[/]: `basefuse fuse` refuses them "
                      "unless --allow-unrelated")
