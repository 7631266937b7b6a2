"""The `basefuse` entry point.

Each command lives in its own module exposing `register(app)`; heavy libraries are
imported inside the command bodies so `basefuse --help` and `basefuse fuse` start fast.
"""
from __future__ import annotations

import importlib
import sys

import typer

from basefuse.errors import BasefuseError

COMMAND_MODULES = [
    "basefuse.cli.fuse_cmd",
    "basefuse.cli.inspect_cmd",
    "basefuse.cli.tasks_cmd",
    "basefuse.cli.finetune_cmd",
    "basefuse.cli.probe_cmd",
    "basefuse.cli.experiment_cmd",
    "basefuse.cli.report_cmd",
    "basefuse.cli.rank_cmd",
    "basefuse.cli.demo_cmd",
]


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="basefuse",
        help="Fuse finetuned checkpoints into a better base model, and prove it is better.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    def _print_version(value: bool) -> None:
        if value:
            from basefuse import __version__

            typer.echo(f"basefuse {__version__}")
            raise typer.Exit(0)

    @app.callback()
    def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                           help="Print the version and exit."),
              quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors and warnings (no "
                                         "progress); the exit code says how it went."),
              as_json: bool = typer.Option(False, "--json", help="Print the command's result as one JSON document "
                                           "on stdout, and nothing else there (no progress)."),
              ) -> None:
        """Fuse finetuned checkpoints into a better base model, and prove it is better.

        Global options go before the command: `basefuse --json fuse ...`, `basefuse -q experiment ...`."""
        from basefuse.cli.output import set_mode

        set_mode(quiet, as_json)

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # command not built yet in this checkout
                continue
            raise
        module.register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a BasefuseError becomes one line on stderr and exit code 2."""
    app = build_app()
    try:
        app(args=argv, prog_name="basefuse", standalone_mode=True)
    except BasefuseError as e:
        print(f"basefuse: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("basefuse: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
