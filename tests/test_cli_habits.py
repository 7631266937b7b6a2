"""CLI and API habits of the field (issue 19, item 6): each guarded here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import basefuse
from basefuse.experiments.jobs import Job
from basefuse.experiments.progress import JobProgress


def test_tasks_piped_gives_whole_names():
    done = subprocess.run([sys.executable, "-m", "basefuse", "tasks"], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="40"), timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert rows[0][0] == "task" and all(len(r) == 7 for r in rows)
    names = {r[0] for r in rows[1:]}
    assert {"rotten_tomatoes", "crowdflower_twitter_sentiment", "trump_tweet_device"} <= names  # not cut


def test_dir_and_help_list_the_api():
    listed = dir(basefuse)
    assert {"fuse", "inspect_sources", "finetune", "linear_probe", "run_experiment", "build_report"} <= set(listed)
    assert "inspect" not in basefuse.__all__  # `from basefuse import *` no longer shadows the standard library
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert basefuse.inspect is basefuse.inspect_sources
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_job_progress_into_a_log_is_one_line_per_job(capsys):
    jobs = [Job(key=f"k{i}", kind="finetune", label=f"finetune job number {i} with a long label " + "x" * 80,
                params={}, deps=()) for i in range(3)]
    with JobProgress(3, enabled=True, terminal=False) as bar:
        bar.advance(jobs[0], {"accuracy": 0.5}, reused=False)
        bar.advance(jobs[1], None, reused=True)
        bar.fail(jobs[2], "boom")
    err = capsys.readouterr().err.splitlines()
    assert err == [f"[1/3] {jobs[0].label} acc 50.0", f"[2/3] {jobs[1].label} reused",
                   f"[3/3] {jobs[2].label} FAILED: boom"]
    with JobProgress(3, enabled=False, terminal=False) as bar:
        bar.advance(jobs[0], None, reused=True)
    assert capsys.readouterr().err == ""


def test_fusing_a_finetune_save_folder_points_at_its_model(tmp_path, cli):
    (tmp_path / "ft" / "model").mkdir(parents=True)
    (tmp_path / "ft" / "model" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "ft" / "metrics.json").write_text("{}")
    code, _, err = cli(["inspect", tmp_path / "ft", tmp_path / "ft"])
    assert code == 2 and f"{tmp_path / 'ft' / 'model'} holds a model" in err


def test_global_json_and_quiet(tmp_path, cli, monkeypatch):
    import yaml

    from builders import make_family, make_tiny_experiment

    base, sources = make_family(tmp_path / "fam")
    code, out, err = cli(["--json", "fuse", *sources, "--base", base, "-o", tmp_path / "out"])
    assert code == 0, err
    doc = json.loads(out)  # the whole of stdout is one JSON document
    assert doc["out"] == str(tmp_path / "out") and doc["fusion"]["method"] == "average"
    assert len(doc["fusion"]["sources"]) == len(sources) and doc["pushed"] is None
    code, out, err = cli(["-q", "fuse", *sources, "--base", base, "-o", tmp_path / "out2"])
    assert code == 0 and out == "" and err == ""
    assert (tmp_path / "out2" / "fusion.json").is_file()
    code, out, _ = cli(["--json", "inspect", *sources, "--base", base])
    assert code == 0 and len(json.loads(out)["sources"]) == len(sources)
    code, out, _ = cli(["--json", "tasks"])
    assert code == 0 and len(json.loads(out)) == 9
    code, out, err = cli(["--quiet", "fuse", sources[0], "-o", tmp_path / "out3"])
    assert code == 2 and out == "" and err.count("\n") == 1 and "at least 2" in err  # errors still say why

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(make_tiny_experiment(tmp_path / "exp")))
    code, out, err = cli(["--json", "experiment", "tiny.yaml", "--out", "RUN", "--dry-run"])
    assert code == 0, err
    plan = json.loads(out)
    assert plan["jobs"] == sum(plan["kinds"].values()) > 0 and plan["leakage_table"].endswith("leakage.json")
    assert [r["target"] for r in plan["largest_overlap_per_target"]] == ["x1"]
