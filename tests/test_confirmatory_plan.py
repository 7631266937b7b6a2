"""The confirmatory plan before anything runs: the config block, reachability at the planned n, detectable effects."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from basefuse.errors import BasefuseError
from basefuse.experiments.config import DEFAULT_ASSUMED_TARGET_SD, builtin_config_path, load_experiment_config, \
    parse_experiment_config
from basefuse.reports import confirmatory

ROOT = Path(__file__).resolve().parent.parent


def test_the_assumed_target_sd_is_the_spread_of_the_last_committed_run():
    # SD over targets of the per-target mean gain of fused (all) over pretrained, docs/results/paper-cpu/raw
    acc: dict = {}
    for line in (ROOT / "docs/results/paper-cpu/raw/results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["ablation"] == "main" and (r["condition"], r["source_family"]) in (("fused", "all"), ("pretrained", None)):
            acc[(r["condition"], r["target"], r["seed"])] = 100 * r["accuracy"]
    targets = {t for _, t, _ in acc}
    gains = [statistics.mean(acc["fused", t, s] - acc["pretrained", t, s] for s in range(3)) for t in targets]
    assert len(gains) == 9
    assert DEFAULT_ASSUMED_TARGET_SD == round(statistics.stdev(gains), 2)


def test_reachability_by_hand():
    # C3's spread ratio prints no interval below 5 targets (its coverage at 3 is 0.91, docs/statistics.md), so no
    # verdict; from 5 on it is a t-based test with no floor on p
    assert confirmatory.reachability("C3", 4, 0.05) == (False, "cannot reach a verdict at n = 4: the spread ratio "
                                                               "needs 5 targets")
    assert confirmatory.reachability("C3", 5, 0.05)[0] is True
    # the mean tests need an interval, i.e. 3 targets
    assert confirmatory.reachability("C1", 2, 0.05)[0] is False
    assert confirmatory.reachability("C5", 3, 0.05)[0] is True


def test_the_planned_detectable_effect_has_80_percent_power():
    from scipy import stats as sps

    d = confirmatory.detectable("C1", 9, 2.25, 3, 0.05, planned=True)
    # noncentral t written out: power of the two-sided t-test at n = 9 for a true mean d with SD 2.25
    nc, crit = d / (2.25 / 3), sps.t.ppf(0.975, 8)
    assert sps.nct.sf(crit, 8, nc) + sps.nct.cdf(-crit, 8, nc) == pytest.approx(0.8, abs=1e-6)
    assert d == pytest.approx(2.40, abs=0.005)  # the 2.40 points for paper-cpu's C1


def test_the_paper_cpu_dry_run_states_every_claim_in_order():
    from basefuse.cli.experiment_cmd import plan_lines
    from basefuse.experiments.runner import make_plan

    cfg = load_experiment_config(builtin_config_path("paper-cpu"))
    lines = plan_lines(cfg, make_plan(cfg).runs)
    assert [line.split()[0] for line in lines[1:]] == ["C1", "C2", "C3", "C4", "C5"]
    c1, c2, c3, c4, c5 = lines[1:]
    assert "n = 9 targets (3-3 seeds)" in c1 and "2.40 points" in c1
    assert "n = 9 targets" in c2  # pooled over every target, each against its own intertrained base
    assert "reachable: the t-based test has no floor at n = 9" in c3
    assert c4.endswith("not measured: one weight decay in this config")
    assert "a ratio of 0.3" in c5


def test_without_intertrained_c2_c3_c4_are_listed_with_their_reason():
    cfg = parse_experiment_config({"families": {"a": ["x", "y"], "b": ["z", "w"]}, "seeds": [0, 1, 2],
                                   "conditions": ["pretrained", "fused"], "weight_decays": [0.0, 0.1]})
    runs = [confirmatory.RunRecord(target=t, target_family=f, condition=c, source_family=sf, seed=s,
                                   weight_decay=wd, accuracy=0.0, macro_f1=0.0)
            for t, f in (("x", "a"), ("y", "a"), ("z", "b"), ("w", "b")) for s in range(3) for wd in (0.0, 0.1)
            for c, sf in (("pretrained", None), ("fused", "all"))]
    plan = confirmatory.plan_from_config(cfg)
    claims = confirmatory.planned_claims(confirmatory.claim_values(confirmatory.arms(runs, plan, 0.0), plan), plan)
    assert [c.id for c in claims] == ["C1", "C2", "C3", "C4", "C5"]
    for c in claims[1:4]:
        assert c.reason == "not measured: no intertrained runs in this config"
    assert claims[0].n == 4 and claims[0].reachable


def test_primary_is_an_alias_of_c1_and_the_plan_keeps_old_fingerprints():
    data = {"families": {"a": ["x", "y"]}}
    plain = parse_experiment_config(data)
    assert confirmatory.plan_from_config(plain).c1 == ("fused (all)", "pretrained")
    old = parse_experiment_config(data | {"primary": ["fused (all)", "intertrained (a)"]})
    assert confirmatory.plan_from_config(old).c1 == ("fused (all)", "intertrained (a)")
    new = parse_experiment_config(data | {"confirmatory": {"fused": "fused[ties] (all)", "assumed_target_sd": 3}})
    assert confirmatory.plan_from_config(new).c1 == ("fused[ties] (all)", "pretrained")
    with pytest.raises(BasefuseError, match="deprecated alias"):
        parse_experiment_config(data | {"primary": ["fused (all)", "pretrained"], "confirmatory": {"fused": "x"}})
    # the block counts in the fingerprint only when set away from its defaults
    assert parse_experiment_config(data | {"confirmatory": {}}).fingerprint() == plain.fingerprint()
    assert new.fingerprint() != plain.fingerprint()


def test_the_demo_dry_run_says_c3_cannot_reach_a_verdict_with_3_targets():
    from basefuse.cli.experiment_cmd import plan_lines
    from basefuse.experiments.runner import make_plan

    cfg = load_experiment_config(builtin_config_path("demo"))
    c3 = plan_lines(cfg, make_plan(cfg).runs)[3]
    # the spread ratio prints no interval below 5 targets, so no verdict is possible, whatever the data
    assert c3.startswith("  C3 ") and "cannot reach a verdict at n = 3: the spread ratio needs 5 targets" in c3
