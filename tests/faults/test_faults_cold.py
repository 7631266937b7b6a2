"""kill -9 in the middle of a ColD Fusion iteration: the rerun redoes no finished job and ends with exactly the
results of an undisturbed run (see fault_helpers.rerun_and_check)."""
from __future__ import annotations

import os
import signal

import pytest

from basefuse.experiments.jobs import output_complete

from fault_helpers import (clean_results, fast_config, kill_group, prepared, rerun_and_check, start_cli, stored_keys,
                           wait_for)

pytestmark = pytest.mark.slow  # a real tiny experiment, twice


@pytest.fixture(scope="module")
def cold_tiny(tmp_path_factory):
    """x1 as target; its chain is over y1, y2 (the family x left out), 2 iterations; plus pretrained and fused."""
    root = tmp_path_factory.mktemp("cold")
    return prepared(root, fast_config(root) | {"cold_fusion": {"iterations": 2}}, "cold")


@pytest.fixture(scope="module")
def cold_clean(cold_tiny):
    return clean_results(cold_tiny)


def test_kill_9_mid_cold_iteration_then_rerun(cold_tiny, cold_clean, tmp_path):
    _, _, config, plan = cold_tiny
    contributors = [k for k, j in plan.jobs.items() if j.label.startswith("cold it2 contributor")]
    it2_fusion = next(k for k, j in plan.jobs.items() if j.label.startswith("cold it2 fuse"))
    assert len(contributors) == 2 and {r.iteration for r in plan.runs if r.condition == "cold"} == {1, 2}
    run = tmp_path / "run"
    proc = start_cli(config, run)
    try:
        wait_for(lambda: bool(set(stored_keys(run)) & set(contributors)) if (run / "store.jsonl").exists()
                 else False, proc, timeout=300)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_group(proc)
    done = {k for k in contributors if output_complete(run, plan.jobs[k])}
    assert 1 <= len(done) < 2 or not output_complete(run, plan.jobs[it2_fusion]), "killed too late to be mid-iteration"
    counting = rerun_and_check(cold_tiny, cold_clean, run)
    assert it2_fusion in counting.keys  # the iteration was finished by the rerun
    assert not done & set(counting.keys)
