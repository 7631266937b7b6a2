"""The report's leakage section: a pure renderer of RUN/leakage.json, and the report build including it."""
from __future__ import annotations

import json

from basefuse.reports.build import build_report
from basefuse.reports.leakage import leakage_html, leakage_markdown, read_leakage

TABLE = {"normalisation": "nfkc", "max_test_overlap": 0.05, "source_rows_counted": "train + validation",
         "rows": [{"target": "t1", "base": "fused (all)", "n_test": 200, "overlap": 3, "fraction": 0.015,
                   "by_source": {"s2": 1, "s1": 3}, "provenance": ["s1", "s2"]},
                  {"target": "t2", "base": "fused <b>", "n_test": 40, "overlap": 2, "fraction": 0.05,
                   "by_source": {"s1": 2}, "provenance": ["s1"]},
                  {"target": "t1", "base": "intertrained (f)", "n_test": 200, "overlap": 0, "fraction": 0.0,
                   "by_source": {}, "provenance": ["s3"]}]}


def test_markdown_lists_pairs_with_overlap_largest_share_first():
    md = leakage_markdown(TABLE)
    assert "3 (target, base) pairs checked" in md and "refused above 5.00% of a test set" in md
    assert "2 of 3 (target, base) pairs share test texts" in md
    rows = [line for line in md.splitlines() if line.startswith("| t") and "target" not in line]
    # 2/40 = 5.00% before 3/200 = 1.50%; the pair without overlap is counted but not listed
    assert rows == ["| t2 | fused <b> | 40 | 2 | 5.00% | s1 (2) |",
                    "| t1 | fused (all) | 200 | 3 | 1.50% | s1 (3), s2 (1) |"]


def test_markdown_says_so_when_nothing_overlaps():
    md = leakage_markdown(TABLE | {"rows": TABLE["rows"][2:]})
    assert "No test text occurs in any base's training data." in md and "| t1" not in md


def test_html_fragment_escapes_names():
    page = leakage_html(TABLE)
    assert "<td>fused &lt;b&gt;</td>" in page and "fused <b>" not in page
    assert page.count("<tr>") == 3  # header + two rows with overlap


def _results(run):
    rows = [{"target": "t1", "target_family": "f", "condition": c, "source_family": None if c == "pretrained"
             else "all", "seed": s, "accuracy": 0.5 + 0.01 * s + (0.02 if c == "fused" else 0), "macro_f1": 0.5}
            for c in ("pretrained", "fused") for s in (0, 1, 2)]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_includes_the_leakage_section_when_the_run_has_a_table(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _results(run)
    paths = build_report(run, warn=None)
    assert "Leakage check" not in paths.markdown.read_text()  # a run planned before the table existed
    (run / "leakage.json").write_text(json.dumps(TABLE))
    assert read_leakage(run) == TABLE
    paths = build_report(run, warn=None)
    assert "| t2 | fused <b> | 40 | 2 | 5.00% | s1 (2) |" in paths.markdown.read_text()
    page = paths.html.read_text()
    assert "<h2>Leakage check (by content)</h2>" in page and page.rstrip().endswith("</body></html>")
