"""The public Python API: every name `basefuse` advertises resolves to a callable, and the CLI lists every command."""
from __future__ import annotations

import pytest

import basefuse


@pytest.mark.parametrize("name", sorted(basefuse._LAZY))
def test_public_names_resolve(name):
    assert callable(getattr(basefuse, name))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        basefuse.no_such_thing  # noqa: B018


def test_cli_registers_every_command(capsys):
    from basefuse.cli.main import build_app
    from typer.main import get_command

    names = set(get_command(build_app()).commands)
    assert names == {"fuse", "inspect", "tasks", "finetune", "experiment", "report", "demo", "rank", "probe"}


def test_cli_version(capsys):
    from basefuse import __version__
    from basefuse.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"basefuse {__version__}"


def test_hashing_starts_without_numpy():
    """`basefuse fuse` starts hashing its inputs before the heavy imports: the hasher must not pull in numpy."""
    import subprocess
    import sys

    code = "import sys, basefuse.checkpoints.hashing; print('numpy' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
