"""A pool on a real two-node Ray cluster (`ray.cluster_utils.Cluster`, both nodes on this machine; issue 18).

What is real: two raylets, each with its own environment; jobs scheduled on both; each node resolving hub ids through
its own hub cache (HF_HUB_CACHE differs per node, offline); the start-up check as Ray tasks pinned to each node.
What is simulated, and how:
- "the driver's hub folder is absent on the node": the driver plans from its own hub cache, which is then deleted
  before any job runs, so the recorded path exists nowhere and every job must fetch the commit from its node's cache;
- "a path one node does not see": every worker process of node 2 (only there is HIDE_FOR_TEST set) enters a mount
  namespace of its own in which an empty tmpfs covers the data folder, as an unmounted share would look. Both nodes
  share everything else, the run directory included. Needs mount namespaces (root or CAP_SYS_ADMIN): skipped without.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from basefuse.errors import BasefuseError
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.runner import make_plan, run_experiment, run_jobs

from builders import EXPERIMENT_HPARAMS, keyword_rows, save_base, save_finetune, write_csv
from hub_cache import add_to_hub_cache, offline_hub

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _hide_in_this_process() -> None:
    """Ray worker set-up (runs in every worker of the job): on a node whose environment names a folder in
    HIDE_FOR_TEST, cover it with an empty tmpfs in a mount namespace of this process only."""
    import ctypes
    import os

    target = os.environ.get("HIDE_FOR_TEST")
    if not target:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, ms_rec, ms_private = 0x00020000, 16384, 1 << 18
    if libc.unshare(clone_newns) != 0 or libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0 \
            or libc.mount(b"tmpfs", target.encode(), b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), f"cannot hide {target}")


_CAN_HIDE = """
import os, sys, tempfile
sys.path.insert(0, {tests!r})
d = tempfile.mkdtemp(); open(os.path.join(d, "f"), "w").close()
os.environ["HIDE_FOR_TEST"] = d
from test_ray_cluster import _hide_in_this_process
_hide_in_this_process()
sys.exit(0 if not os.path.exists(os.path.join(d, "f")) else 1)
"""


def _can_hide() -> bool:
    code = _CAN_HIDE.format(tests=str(Path(__file__).parent))
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def _tokenized(path: Path, base: Path) -> Path:
    for f in TOKENIZER_FILES:
        if (base / f).exists():
            shutil.copy(base / f, path / f)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny models in three hub caches (the driver's and one per node), data files, and the running cluster."""
    from ray.cluster_utils import Cluster

    root = tmp_path_factory.mktemp("ray-pool")
    base = save_base(root / "models" / "base")
    cks = {f"ck{i}": _tokenized(save_finetune(root / "models" / f"ck{i}", base, num_labels=2, seed=i), base)
           for i in (1, 2)}
    caches = {who: root / f"hub-{who}" for who in ("driver", "node1", "node2")}
    for cache in caches.values():
        add_to_hub_cache(cache, "org/base", base, COMMIT)
        for name, path in cks.items():
            add_to_hub_cache(cache, f"org/{name}", path, COMMIT)
    data, hidden = root / "data", root / "hidden"
    data.mkdir()
    hidden.mkdir()
    files = {f"a{i}": write_csv(data / f"a{i}.csv", keyword_rows(120, seed=i)) for i in (1, 2)}
    files["t1"] = write_csv(data / "t1.csv", keyword_rows(120, seed=9))
    files["hidden"] = write_csv(hidden / "t2.csv", keyword_rows(120, seed=10))

    def env(cache: Path, **more: str) -> dict[str, str]:
        return {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", **more}

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "env_vars": env(caches["node1"])})
    node2 = cluster.add_node(num_cpus=1, env_vars=env(caches["node2"], HIDE_FOR_TEST=str(hidden)))
    cluster.wait_for_nodes()
    try:
        yield {"root": root, "base": base, "cks": cks, "caches": caches, "files": files, "cluster": cluster,
               "node1": cluster.head_node, "node2": node2}
    finally:
        cluster.shutdown()


def _config(w, base: str, pool: dict[str, str], target: str) -> dict:
    hp = EXPERIMENT_HPARAMS | {"max_epochs": 2}
    members = [{"name": name, "model": model, "trained_on": [{"name": f"a{i}", "spec": str(w["files"][f"a{i}"])}]}
               for i, (name, model) in enumerate(pool.items(), start=1)]
    return {"name": "ray-pool", "base_model": base, "families": {"pool": members},
            "held_out": {"targets": [{"name": "t", "spec": target}]}, "conditions": ["fused"],
            "fused_groups": ["all"], "seeds": [0], "finetune": hp,
            "leakage": {"max_test_overlap": 0.3, "max_near_duplicate_overlap": 0.6}}


def test_hub_models_resolve_on_each_node_from_its_own_cache_and_jobs_run_on_both(world, tmp_path, monkeypatch):
    """Planned on the driver from its hub cache, which is then deleted: every job fetches the recorded commit from
    the hub cache of the node it runs on (the base model too), and the two checkpoint jobs, in flight together with
    one CPU per node, run one on each node."""
    from basefuse.executors.ray_executor import RayExecutor

    w = world
    offline_hub(monkeypatch, w["caches"]["driver"])
    cfg = parse_experiment_config(_config(w, "org/base", {"ck1": "org/ck1", "ck2": "org/ck2"},
                                          str(w["files"]["t1"])))
    plan = make_plan(cfg)
    driver_paths = {j.params["base"] for j in plan.jobs.values() if j.kind == "checkpoint"}
    assert all(p.startswith(str(w["caches"]["driver"])) for p in driver_paths)
    shutil.rmtree(w["caches"]["driver"])  # the recorded folders now exist on no node

    ray.init(address=w["cluster"].address, log_to_driver=False)
    try:
        with RayExecutor(num_cpus_per_job=1) as ex:
            assert ex.workers == 2 and len(ex.job_nodes()) == 2
            outcome = run_jobs(plan, tmp_path / "run", ex, progress=False)
    finally:
        ray.shutdown()
    assert not outcome.failures.failed and outcome.executed == len(plan.jobs)
    read_from = {json.loads((tmp_path / "run" / "jobs" / k / "checkpoint.json").read_text())["model"]
                 for k, j in plan.jobs.items() if j.kind == "checkpoint"}
    caches = {Path(p).parents[2] for p in read_from}  # <cache>/models--org--ckN/snapshots/<commit>
    assert caches == {w["caches"]["node1"], w["caches"]["node2"]}  # one on each node, each from its own cache
    assert all(Path(p).name == COMMIT for p in read_from)


def test_a_path_one_node_does_not_see_refuses_the_run_before_any_job(world, tmp_path):
    """The target's data lies in a folder node 2's workers do not see (covered by a tmpfs in their mount
    namespace): one line naming node 2 and that file, exit code 2, no job submitted, the new run folder removed."""
    if not _can_hide():
        pytest.skip("no mount namespaces here (needs root or CAP_SYS_ADMIN) to hide a folder from one node")
    from basefuse.executors.ray_executor import RayExecutor

    w = world
    cks = {name: str(path) for name, path in w["cks"].items()}
    cfg = parse_experiment_config(_config(w, str(w["base"]), cks, str(w["files"]["hidden"])))
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    ray.init(address=w["cluster"].address, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": _hide_in_this_process})
    try:
        with RayExecutor(num_cpus_per_job=1) as ex, pytest.raises(BasefuseError) as e:
            run_experiment(cfg, tmp_path / "run", executor=ex, progress=False)
    finally:
        ray.shutdown()
    msg = str(e.value)
    assert f"node id {w['node2'].node_id}" in msg and f"does not see {w['files']['hidden']}" in msg
    assert w["node1"].node_id not in msg and "\n" not in msg and e.value.exit_code == 2
    assert not (tmp_path / "run").exists()  # nothing submitted, nothing written
