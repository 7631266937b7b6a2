"""Fusion-set selection (issue 18, item 4): the greedy soup on stubbed probe scores, worked out by hand."""
from __future__ import annotations

import pytest

from basefuse.experiments.selection import Step, greedy, rank


def test_rank_is_by_score_then_name():
    assert rank({"d": 0.6, "c": 0.75, "a": 0.8, "b": 0.75}) == ["a", "b", "c", "d"]


def test_greedy_on_stubbed_scores_picks_the_hand_worked_set():
    # By hand: a alone 0.80 (kept: first); a+b 0.78 < 0.80, dropped; a+c 0.80 = 0.80, kept ("does not drop");
    # a+c+d 0.83 >= 0.80, kept. The chosen set: a, c, d.
    scores = {("a",): 0.80, ("a", "b"): 0.78, ("a", "c"): 0.80, ("a", "c", "d"): 0.83}
    asked = []

    def score_of(members):
        asked.append(members)
        return scores[members]

    steps = greedy(["a", "b", "c", "d"], score_of)
    assert steps == [Step("a", ("a",), 0.80, True), Step("b", ("a", "b"), 0.78, False),
                     Step("c", ("a", "c"), 0.80, True), Step("d", ("a", "c", "d"), 0.83, True)]
    assert asked == list(scores)  # each trial scored once, in rank order


def test_greedy_compares_with_the_last_kept_set_not_the_last_trial():
    # a 0.70; a+b 0.60 dropped; a+c 0.65: below a's 0.70 (though above the dropped trial's 0.60), dropped too
    scores = {("a",): 0.70, ("a", "b"): 0.60, ("a", "c"): 0.65}
    steps = greedy(["a", "b", "c"], scores.__getitem__)
    assert [s.accepted for s in steps] == [True, False, False]
    assert steps[-1].members == ("a", "c")


def test_greedy_needs_a_candidate():
    with pytest.raises(ValueError, match="no candidate"):
        greedy([], lambda m: 0.0)


# ---- end to end on a tiny pool -------------------------------------------------------------------------------

def test_selection_and_both_evaluations_end_to_end(tmp_path):
    import json

    from basefuse.cli.experiment_cmd import build_run_report
    from basefuse.experiments.config import parse_experiment_config
    from basefuse.experiments.runner import run_experiment

    from builders import EXPERIMENT_HPARAMS, keyword_rows, save_base, write_csv
    from test_pool_sources import _checkpoint

    base = save_base(tmp_path / "base")
    data = tmp_path / "data"
    data.mkdir()
    tasks = {n: write_csv(data / f"{n}.csv", keyword_rows(160, seed=s))
             for s, n in enumerate(["a1", "a2", "a3", "p1", "t1"], start=1)}
    pool = [{"name": f"ck{i}", "model": str(_checkpoint(tmp_path / f"ck{i}", base, seed=i)),
             "trained_on": [{"name": f"a{i}", "spec": str(tasks[f"a{i}"])}]} for i in (1, 2, 3)]
    cfg = parse_experiment_config({
        "name": "select", "base_model": str(base), "families": {"pool": pool},
        "held_out": {"h": [{"name": n, "spec": str(tasks[n])} for n in ("p1", "t1")]},
        "conditions": ["pretrained", "fused"], "fused_groups": ["all"], "seeds": [0], "evaluation": "both",
        "finetune": EXPERIMENT_HPARAMS, "probe": {"max_length": 16, "c_grid": [0.1, 1.0]},
        "selection": {"probe": ["p1"], "seeds": [0, 1]},
        "leakage": {"max_test_overlap": 0.2, "max_near_duplicate_overlap": 0.5}})
    assert cfg.target_names() == ["t1"]  # the probe task is never a target
    run = tmp_path / "run"
    summary = run_experiment(cfg, run, progress=False)
    assert not summary.failures

    sel = json.loads((run / "selection.json").read_text())
    (p,) = sel["pools"]
    assert p["candidates"] == ["ck1", "ck2", "ck3"] and p["targets"] == ["t1"]
    scores = sel["candidate_scores"]
    assert p["ranking"] == sorted(scores, key=lambda c: (-scores[c], c))  # by score, ties by name
    # the curve follows the rule, recomputed here: each trial is the kept set plus the next; kept iff not below
    kept, best = (), None
    for c, step in zip(p["ranking"], p["curve"]):
        assert step["members"] == list(kept + (c,)) and step["candidate"] == c
        ok = best is None or step["score"] >= best
        assert step["accepted"] == ok
        if ok:
            kept, best = kept + (c,), step["score"]
    assert p["chosen"] == list(kept) and p["best_single"] == p["ranking"][0]
    assert p["curve"][0]["score"] == scores[p["ranking"][0]]

    rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    by = {(r["condition"], r.get("evaluation", "finetune")): r for r in rows}
    assert set(by) == {(c, e) for c in ("pretrained", "fused", "best single", "fused[greedy]")
                       for e in ("finetune", "linear_probe")}
    assert by[("fused[greedy]", "finetune")]["sources"] == p["chosen"]
    assert by[("best single", "linear_probe")]["sources"] == [p["best_single"]]
    assert by[("fused", "finetune")]["sources"] == ["ck1", "ck2", "ck3"]

    build_run_report(run, summary.records, cfg.conditions)
    md = (run / "report" / "report.md").read_text()
    assert "Every table and figure of this report is of the finetuning evaluation" in md
    assert "report-linear_probe/" in md and "Spearman's rank correlation" in md and "(n = 4 cells;" in md
    assert "of gains over pretrained" in md and "(n = 3 cells)" in md
    # the config named no confirmatory plan: the run's experiment.yaml must not make it look declared
    assert "The confirmatory plan: the defaults, since this run's config names none" in md
    assert "## Fusion-set selection" in md and f"chosen set {', '.join(p['chosen'])}" in md
    probe_md = (run / "report-linear_probe" / "report.md").read_text()
    assert "Every table and figure of this report is of the linear probe evaluation" in probe_md


def test_a_failed_round_stops_with_one_line_naming_the_first_failure(tmp_path):
    from types import SimpleNamespace

    from basefuse.errors import BasefuseError
    from basefuse.experiments.failures import Failures, raise_if_failed

    raise_if_failed(Failures(), "selection", tmp_path)  # nothing failed: goes on
    f = Failures()
    f.add_failed(SimpleNamespace(key="k1", kind="probe", label="probe a on p"), {"error": "boom"}, [])
    with pytest.raises(BasefuseError, match=r"^selection stopped: 1 job\(s\) failed, first probe a on p: boom; rerun"):
        raise_if_failed(f, "selection", tmp_path)
