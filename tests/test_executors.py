"""Every executor runs the same plan to the same results: in-process, a process pool, and Ray."""
from __future__ import annotations

import json

import pytest

from basefuse.executors import LocalExecutor, ProcessPoolExecutor
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.runner import make_plan, run_experiment

from builders import make_tiny_experiment

pytestmark = pytest.mark.slow  # whole tiny experiments, on three executors

RUN_FIELDS = ("target", "condition", "source_family", "seed", "weight_decay", "iteration")


def _results(run_dir) -> dict[tuple, float]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return {tuple(r.get(k) for k in RUN_FIELDS): r["accuracy"] for r in rows}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """Two fusion methods side by side and a 2-iteration ColD Fusion chain (over family y, x1's family left out)."""
    root = tmp_path_factory.mktemp("exec")
    cfg = parse_experiment_config(make_tiny_experiment(
        root, fused_groups=["all"], cold_fusion={"iterations": 2},
        fusion=[{"method": "average"}, {"method": "ties", "params": {"density": 0.5}}]))
    with LocalExecutor() as local:
        run_experiment(cfg, root / "local", executor=local, progress=False)
    got = _results(root / "local")
    assert {(k[1], k[5]) for k in got} == {("pretrained", None), ("fused", None), ("fused[ties]", None),
                                           ("intertrained", None), ("cold", 1), ("cold", 2)}
    return root, cfg, got


def _check_same(cfg, want: dict, got: dict) -> None:
    assert len(got) == len(make_plan(cfg).runs) and set(got) == set(want)
    for key, acc in want.items():
        assert got[key] == pytest.approx(acc, abs=1e-9), key


def test_process_pool_matches_local(local_run):
    root, cfg, want = local_run
    with ProcessPoolExecutor(2) as pool:
        summary = run_experiment(cfg, root / "pool", executor=pool, progress=False)
    assert summary.jobs_executed == len(make_plan(cfg).jobs)
    _check_same(cfg, want, _results(root / "pool"))


def test_ray_executor_matches_local(local_run):
    ray = pytest.importorskip("ray")
    from basefuse.executors.ray_executor import RayExecutor

    root, cfg, want = local_run
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with RayExecutor(workers=2) as executor:
            summary = run_experiment(cfg, root / "ray", executor=executor, progress=False)
    finally:
        ray.shutdown()
    assert summary.jobs_executed == len(make_plan(cfg).jobs)
    _check_same(cfg, want, _results(root / "ray"))
