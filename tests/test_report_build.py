"""`build_report` and `basefuse report` end to end on a tmp run dir, and bad input."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from basefuse.errors import BasefuseError
from basefuse.reports.build import build_report, summary_text, table1_text
from basefuse.reports.render import headline
from test_report_stats import fixture_rows

CONFIG = "base_model: tiny-bert\nseeds: [0, 1]\nweight_decays: [0.0, 0.01]\n"


def write_run(tmp_path: Path, rows: list[dict] | None = None, *, extra_lines: str = "",
              config: bool = True) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    lines = [json.dumps(r) for r in (fixture_rows() if rows is None else rows)]
    (run / "results.jsonl").write_text("\n".join(lines) + "\n" + extra_lines)
    if config:
        (run / "experiment.yaml").write_text(CONFIG)
    return run


def test_build_report_writes_everything(tmp_path):
    run = write_run(tmp_path)
    paths = build_report(run)
    assert paths.out_dir == run / "report"
    for p in (paths.markdown, paths.html, paths.csv, paths.json, *paths.figures):
        assert p.is_file() and p.stat().st_size > 0
    # a figure per measured claim first (C3's spread ratio needs 5 targets: this run has 3), then the standard ones
    assert [p.name for p in paths.figures] == ["claim-C1.png", "claim-C2.png", "claim-C4.png", "claim-C5.png",
                                               "gains_per_target.png", "fused_vs_intertrained.png", "spread.png",
                                               "seed_std.png", "weight_decay.png", "gain_vs_n_models.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths.figures)

    md = paths.markdown.read_text()
    # Table 1 row of fused (all): A = (64 + 71.5) / 2, B = 51.5, mean = 187 / 3
    assert "| fused (all) | 67.75 | 51.50 | 62.33 |" in md
    assert "| pretrained | 65.50 | 52.00 | 61.00 |" in md
    assert "win" not in md.lower()
    # weight decay: gains (3, 1.5, -0.5) at wd 0, t-interval 4/3 -+ 4.303 * 1.756 / sqrt(3) = [-3.03, +5.70], widened
    # below by Hall's interval of these skewed values to -3.43; +2 everywhere at 0.01 (all equal: no interval, never a
    # zero-width one)
    assert ("| fused (all) | +1.33 [-3.43, +5.70] (3 targets, 2 seeds) | +2.00 n/a (all equal, n=3) (3 targets, "
            "2 seeds) |" in md)
    assert "base_model: tiny-bert" in md
    assert headline(paths.summary) in md

    runs = json.loads(paths.json.read_text())
    assert len(runs) == len(fixture_rows())
    csv_lines = paths.csv.read_text().splitlines()
    assert len(csv_lines) == len(runs) + 1 and csv_lines[0].startswith("target,target_family,condition")


def test_html_is_self_contained_and_has_the_tables(tmp_path):
    paths = build_report(write_run(tmp_path))
    page = paths.html.read_text()
    assert "<td>fused (all)</td><td>67.75</td><td>51.50</td><td>62.33</td>" in page
    assert "Table 2" in page and "How to read this" in page and "tiny-bert" in page
    assert "<link" not in page and "<script" not in page
    # the only links are to the run's own files (results.jsonl and this folder's exports), nothing fetched
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs[0] == "../results.jsonl" and not any(":" in h for h in hrefs)
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 10 and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_table1_text_for_the_terminal(tmp_path):
    paths = build_report(write_run(tmp_path))
    text = table1_text(paths.summary)
    assert "fused (all)" in text and "62.33" in text and "intertrained (A)" in text
    assert "\x1b[" not in text
    assert headline(paths.summary) in text.replace("\n", " ")


def test_cli_end_to_end(tmp_path, cli):
    run = write_run(tmp_path)
    code, out, err = cli(["report", str(run)])
    assert code == 0, err
    assert "fused (all)" in out and "62.33" in out
    assert "fused (all) vs pretrained: +1.33 points" in " ".join(out.split())
    assert str(run / "report" / "report.html") in out.replace("\n", "")
    # rerunning replaces the previous (derived) report
    code, _, err = cli(["report", str(run)])
    assert code == 0, err
    assert (run / "report" / "report.html").is_file()
    assert not [p for p in run.iterdir() if p.name.startswith(".report")]


def test_cli_as_subprocess(tmp_path):
    run = write_run(tmp_path)
    out = tmp_path / "elsewhere"
    proc = subprocess.run([sys.executable, "-m", "basefuse", "report", str(run), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.html").is_file() and not (run / "report").exists()


def test_corrupt_last_line_is_skipped_with_warning(tmp_path, cli):
    run = write_run(tmp_path, extra_lines='{"target": "t1", "targ')
    n = len(fixture_rows()) + 1
    code, out, err = cli(["report", str(run)])
    assert code == 0, err
    assert f"results.jsonl:{n}: skipped a corrupt line" in err
    assert f":{n}: skipped a corrupt line" in (run / "report" / "report.md").read_text()


def bad(run: Path, args: list[str], cli, *, expect: str) -> str:
    code, _, err = cli(["report", str(run), *args])
    assert code == 2
    assert err.startswith("basefuse: error: ") and err.count("\n") == 1
    assert expect in err
    return err


def test_missing_results(tmp_path, cli):
    run = tmp_path / "run"
    run.mkdir()
    bad(run, [], cli, expect="results.jsonl not found")
    assert list(run.iterdir()) == []
    bad(tmp_path / "nope", [], cli, expect="run directory")


def test_no_pretrained_rows(tmp_path, cli):
    run = write_run(tmp_path, [r for r in fixture_rows() if r["condition"] != "pretrained"])
    bad(run, [], cli, expect="no pretrained runs")
    assert not (run / "report").exists()


@pytest.mark.parametrize("field", ["accuracy", "target", "seed"])
def test_record_missing_a_field(tmp_path, cli, field):
    rows = fixture_rows()
    del rows[2][field]
    run = write_run(tmp_path, rows)
    bad(run, [], cli, expect=f"results.jsonl:3: field '{field}' is missing")
    assert not (run / "report").exists()


def test_record_with_bad_values(tmp_path, cli):
    rows = fixture_rows()
    rows[0]["accuracy"] = 63.0  # points instead of a fraction
    del rows[1]["condition"]  # any condition name is reported (open vocabulary); a missing one is an error
    run = write_run(tmp_path, rows)
    bad(run, [], cli, expect="results.jsonl:1: field 'accuracy' is 63.0")
    rows[0]["accuracy"] = 0.63
    (run / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    bad(run, [], cli, expect="results.jsonl:2: field 'condition' is missing")


def test_out_must_not_clobber(tmp_path, cli):
    run = write_run(tmp_path)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    bad(run, ["--out", str(precious)], cli, expect="is not a basefuse report")
    assert (precious / "thesis.tex").read_text() == "x"
    bad(run, ["--out", str(run), "--force"], cli, expect="overlaps input")
    assert sorted(p.name for p in run.iterdir()) == ["experiment.yaml", "results.jsonl"]


def test_missing_run_dir_is_an_error(tmp_path):
    with pytest.raises(BasefuseError):
        build_report(tmp_path / "missing")


def test_tables_use_the_first_configured_weight_decay(tmp_path):
    run = write_run(tmp_path)
    (run / "experiment.yaml").write_text("weight_decays: [0.01, 0.0]\n")
    paths = build_report(run)
    assert paths.summary.weight_decay == 0.01
    assert paths.summary.table1["fused (all)"]["mean"] == pytest.approx(62.0)
    (run / "experiment.yaml").write_text("weight_decays: [: not yaml\n")  # unreadable: lowest present
    assert build_report(run).summary.weight_decay == 0.0


def test_summary_text_of_a_run_dir(tmp_path, capsys):
    run = write_run(tmp_path, extra_lines="{corrupt\n")
    text = summary_text(run)
    assert "| fused (all)" not in text and "fused (all)" in text and "62.33" in text
    assert capsys.readouterr().err == ""  # warnings are build_report's job, not repeated here


def test_claims_and_comparisons_are_exported_and_no_exploratory_row_has_a_verdict(tmp_path):
    import csv

    paths = build_report(write_run(tmp_path))
    claims = list(csv.DictReader((paths.out_dir / "claims.csv").open()))
    assert [c["id"] for c in claims] == ["C1", "C2", "C3", "C4", "C5"]  # numbering never jumps
    assert json.loads((paths.out_dir / "claims.json").read_text())[0]["id"] == "C1"
    rows = list(csv.DictReader((paths.out_dir / "comparisons.csv").open()))
    assert rows and all(r["n_targets"] and "effect_size" in r for r in rows)
    md = paths.markdown.read_text()
    assert "[../results.jsonl](../results.jsonl)" in md
    # verdict words appear in the claims table only: every exploratory table is intervals and effect sizes
    tables = md.split("\n### ")
    exploratory = [t for t in tables if t.startswith("Exploratory")]
    assert exploratory and not any(w in t for t in exploratory for w in ("better", "worse", "inconclusive",
                                                                          "p (Holm)"))
