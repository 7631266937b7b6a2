"""The terminal tables print every label as written: rich must not read `[ties]` in a label as markup."""
from __future__ import annotations

from basefuse.reports.build import _rich
from basefuse.reports.render import TableModel


def _printed(table: TableModel) -> str:
    import io

    from rich.console import Console

    console = Console(width=200, color_system=None, file=io.StringIO())
    console.print(_rich(table))
    return console.file.getvalue()


def test_a_bracketed_method_name_stays_next_to_the_plain_label():
    t = TableModel("gain over [pretrained]", ["base", "mean [points]"],
                   [["fused (all)", "+1.00"], ["fused[ties] (all)", "+2.00"], ["[bold]x[/bold]", "+3.00"]])
    out = _printed(t)
    assert "fused[ties] (all)" in out and "fused (all)" in out
    assert "[bold]x[/bold]" in out  # a label that is valid markup is printed, not applied
    assert "gain over [pretrained]" in out and "mean [points]" in out
