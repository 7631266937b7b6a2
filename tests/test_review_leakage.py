"""Review of the leakage guard: attacks that got a leaking plan past it. Each test is named after the hole it closes."""
from __future__ import annotations

import pytest
from test_leakage import plan_of, rows_for, tiny_config, write_csv

from basefuse.data.content import normalise_text
from basefuse.errors import BasefuseError


def test_zero_width_and_soft_hyphen_do_not_hide_a_text():
    # Tokenizers drop format characters (Unicode Cf), so the model reads these as the plain text.
    assert normalise_text("x1 row 1\u200b good") == "x1 row 1 good"  # zero-width space
    assert normalise_text("x1 r\u00adow 1 go\u2060od\ufeff") == "x1 row 1 good"  # soft hyphen, word joiner, BOM


def test_copy_with_zero_width_spaces_is_refused(tmp_path):
    data = tiny_config(tmp_path)
    hidden = [(t.replace(" ", " \u200b"), y) for t, y in rows_for("x1")]
    data["families"]["y"].append({"name": "x1b", "spec": str(write_csv(tmp_path / "c" / "x1b.csv", hidden))})
    with pytest.raises(BasefuseError, match=r"tasks 'x1' and 'x1b' hold the same data"):
        plan_of(data)
