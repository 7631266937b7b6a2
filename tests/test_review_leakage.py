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


def test_number_of_models_bases_are_told_apart_in_the_leakage_table(tmp_path):
    # x1's pool is x2, x3, y1, y2, y3; 2 random subsets per k, so several k-model bases share source family 'all'.
    data = tiny_config(tmp_path, conditions=["pretrained", "fused"], n_models={"enabled": True, "subsets": 2})
    rows = plan_of(data).leakage["rows"]
    bases = [r["base"] for r in rows]
    assert len(bases) == len(set(bases)) == len({r["base_job"] for r in rows})
    two = [b for b in bases if b.startswith("fused (2 models: ")]
    assert two and all(len(b.removeprefix("fused (2 models: ").rstrip(")").split("+")) == 2 for b in two)
