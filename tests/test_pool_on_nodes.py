"""Jobs find their models on the node that runs them (issue 18, Ray): a hub model is recorded with its id and the
commit planning resolved, and a node without the driver's folder fetches that commit into its own hub cache; the
start-up check lists the local paths every node must see. Fast: no Ray here (tests/test_ray_cluster.py has it)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from basefuse.errors import BasefuseError
from basefuse.executors.shared_storage import node_problem, token_file
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.jobs import execute_job, job_key, model_path_of
from basefuse.experiments.locate import hub_snapshot_origin, local_paths, origin_of
from basefuse.experiments.runner import make_plan, run_experiment

from builders import CountingExecutor, EXPERIMENT_HPARAMS, keyword_rows, save_base, save_finetune, write_csv
from hub_cache import add_to_hub_cache, offline_hub
from test_models_resolve import fake_minilm  # noqa: F401  (a fixture: a tiny model in the built-in wheel)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    base = save_base(root / "base")
    ck = save_finetune(root / "ck", base, num_labels=2, seed=1)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (base / f).exists():
            shutil.copy(base / f, ck / f)
    other = save_finetune(root / "other", base, num_labels=2, seed=2)
    return root, base, ck, other


def test_a_hub_snapshot_folder_gives_its_id_and_commit():
    snap = Path("/x/hub/models--my-org--tiny.bert/snapshots") / COMMIT
    assert hub_snapshot_origin(snap) == {"hub": "my-org/tiny.bert", "revision": COMMIT}
    assert hub_snapshot_origin(Path("/x/hub/models--a--b/snapshots/main")) == {}  # a branch name is no commit
    assert hub_snapshot_origin(Path("/x/models--a--b/other") / COMMIT) == {}
    assert hub_snapshot_origin(Path("/data/my-model")) == {}
    assert origin_of("minilm", "/cache/models/minilm-123") == {"builtin": "minilm"}
    assert origin_of("my-org/tiny.bert", snap) == {"hub": "my-org/tiny.bert", "revision": COMMIT}


def test_a_local_folder_given_as_such_has_no_origin_even_inside_a_hub_cache(tmp_path):
    snap = tmp_path / "models--a--b" / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    assert origin_of(str(snap), snap) == {}  # the user named the folder: it must be shared, not fetched


def test_the_job_key_holds_the_weights_not_where_they_are():
    def key(**model):
        return job_key("finetune", {"model": model, "task": {"name": "t"}, "seed": 0})

    here = key(base="/driver/hub/models--a--b/snapshots/" + COMMIT, fingerprint="sha256:1")
    assert here == key(base="/elsewhere", hub="a/b", revision=COMMIT, fingerprint="sha256:1")
    assert here == key(base="/x", builtin="minilm", fingerprint="sha256:1")
    assert here != key(base="/elsewhere", hub="a/b", revision=COMMIT, fingerprint="sha256:2")


def test_a_node_without_the_driver_folder_fetches_the_recorded_commit_from_its_own_cache(models, tmp_path,
                                                                                         monkeypatch):
    root, base, ck, other = models
    from basefuse.finetuning.api import base_fingerprint

    node_cache = tmp_path / "node-hub"
    here = add_to_hub_cache(node_cache, "org/ck", ck, COMMIT)
    offline_hub(monkeypatch, node_cache)
    gone = str(tmp_path / "driver-hub" / "models--org--ck" / "snapshots" / COMMIT)  # the driver's folder
    ref = {"job": "k", "kind": "checkpoint", "base": gone, "hub": "org/ck", "revision": COMMIT,
           "fingerprint": base_fingerprint(str(ck))}
    assert model_path_of(tmp_path, ref) == str(here)
    assert model_path_of(tmp_path, {"base": gone, "hub": "org/ck", "revision": COMMIT,
                                    "fingerprint": base_fingerprint(str(ck))}) == str(here)  # a hub base model
    # the checkpoint's own job records where this node read it
    job = {"kind": "checkpoint", "key": "ck-job", "params": {"name": "ck", "base": gone, "hub": "org/ck",
                                                             "revision": COMMIT, "fingerprint": ref["fingerprint"],
                                                             "trained_on": "unknown"}}
    execute_job(job, str(tmp_path / "run"))
    record = json.loads((tmp_path / "run" / "jobs" / "ck-job" / "checkpoint.json").read_text())
    assert record["model"] == str(here)
    # other weights under that commit in this node's cache are refused, never used under the planned key
    with pytest.raises(BasefuseError, match=r"weights changed after the run was planned"):
        model_path_of(tmp_path, ref | {"fingerprint": base_fingerprint(str(other))})
    with pytest.raises(BasefuseError, match=r"weights changed after the run was planned"):  # a base model too
        model_path_of(tmp_path, {"base": gone, "hub": "org/ck", "revision": COMMIT,
                                 "fingerprint": base_fingerprint(str(other))})
    with pytest.raises(BasefuseError, match=r"org/ck.*not in the hub cache"):  # a commit this node lacks
        model_path_of(tmp_path, ref | {"revision": "f" * 40})


def test_a_local_folder_without_origin_is_read_where_recorded(tmp_path):
    assert model_path_of(tmp_path, {"base": str(tmp_path / "absent")}) == str(tmp_path / "absent")


def _pool_config(root: Path, base: Path, models: list[str]) -> dict:
    data = root / "data"
    data.mkdir(exist_ok=True)
    t1 = write_csv(data / "t1.csv", keyword_rows(120, seed=9))
    pool = [{"name": f"ck{i}", "model": m,
             "trained_on": [{"name": f"a{i}", "spec": str(write_csv(data / f"a{i}.csv", keyword_rows(120, seed=i)))}]}
            for i, m in enumerate(models, start=1)]
    return {"name": "hubpool", "base_model": str(base), "families": {"pool": pool},
            "held_out": {"targets": [{"name": "t1", "spec": str(t1)}]}, "conditions": ["pretrained", "fused"],
            "fused_groups": ["all"], "seeds": [0], "finetune": EXPERIMENT_HPARAMS,
            "leakage": {"max_test_overlap": 0.3, "max_near_duplicate_overlap": 0.6}}


def test_a_hub_checkpoint_is_planned_with_its_id_and_resolved_commit_under_the_key_of_its_weights(models, tmp_path,
                                                                                                monkeypatch):
    root, base, ck, other = models
    offline_hub(monkeypatch, tmp_path / "hub")
    snap = add_to_hub_cache(tmp_path / "hub", "org/ck", ck, COMMIT)
    cfg = _pool_config(tmp_path, base, ["org/ck", str(other)])
    hub_plan = make_plan(parse_experiment_config(cfg))
    job = next(j for j in hub_plan.jobs.values() if j.kind == "checkpoint" and j.params["name"] == "ck1")
    assert (job.params["base"], job.params["hub"], job.params["revision"]) == (str(snap), "org/ck", COMMIT)
    fuse = next(j for j in hub_plan.jobs.values() if j.kind == "fuse")
    origins = {(s.get("hub"), s.get("revision")) for s in fuse.params["sources"]}
    assert origins == {("org/ck", COMMIT), (None, None)}  # the local checkpoint has no origin: it must be shared
    cfg["families"]["pool"][0]["model"] = str(ck)  # the same weights as a local folder: the same jobs
    local_plan = make_plan(parse_experiment_config(cfg))
    assert all("hub" not in j.params for j in local_plan.jobs.values() if j.kind == "checkpoint")
    assert set(hub_plan.jobs) == set(local_plan.jobs)
    paths = local_paths(j.params for j in hub_plan.jobs.values())
    assert str(snap) not in paths and str(other.resolve()) in paths  # the hub checkpoint is fetched per node


def test_local_paths_lists_model_folders_and_data_files_not_hub_models_or_builtin_tasks(tmp_path):
    data = write_csv(tmp_path / "d.csv", keyword_rows(10, seed=0))
    jobs = [{"model": {"base": "/shared/base", "fingerprint": "f"}, "task": {"name": "d", "spec": str(data)}},
            {"sources": [{"job": "1", "kind": "checkpoint", "base": "/driver/snap", "hub": "a/b", "revision": COMMIT,
                          "fingerprint": "g"}], "base": {"base": "/shared/base", "fingerprint": "f"}},
            {"model": {"base": "/cache/minilm", "builtin": "minilm", "fingerprint": "h"},
             "task": {"name": "sst2", "spec": "sst2"}},
            {"name": "ck", "base": "/shared/ck", "fingerprint": "i", "trained_on": "unknown"}]
    assert local_paths(jobs, extra=["sst2", str(data), "hf:imdb"]) == [str(data), "/shared/base", "/shared/ck"]


def test_a_node_must_read_the_driver_token_write_beside_it_and_see_every_path(tmp_path):
    present = write_csv(tmp_path / "d.csv", keyword_rows(10, seed=0))
    with token_file(tmp_path) as (name, token):
        assert node_problem(str(tmp_path), name, token, [str(present)], "n1") is None
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "d.csv"])  # its scratch file is gone
        assert "does not see the run directory" in node_problem(str(tmp_path), name, "another run", [], "n1")
        other = tmp_path / "other"
        other.mkdir()
        assert "token file is missing" in node_problem(str(other), name, token, [], "n1")
        missing = str(tmp_path / "gone.csv")
        assert node_problem(str(tmp_path), name, token, [str(present), missing, "/nope"], "n1") == \
            f"does not see {missing}, which the jobs read"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".basefuse")] == []  # the token is removed


class _Refusing(CountingExecutor):
    """Checks like a cluster where one node lacks every path: records what it was asked, refuses."""

    asked: list[str] | None = None

    def check_shared(self, run_dir, paths):
        self.asked = list(paths)
        raise BasefuseError("ray node 10.0.0.2 (node id n2) does not see it")


def test_the_run_is_refused_before_any_job_and_the_new_run_dir_is_left_empty(models, tmp_path, monkeypatch):
    root, base, ck, other = models
    offline_hub(monkeypatch, tmp_path / "hub")
    add_to_hub_cache(tmp_path / "hub", "org/ck", ck, COMMIT)
    add_to_hub_cache(tmp_path / "hub", "org/ck2", other, COMMIT)
    cfg = parse_experiment_config(_pool_config(tmp_path, base, ["org/ck", "org/ck2"]))
    ex = _Refusing()
    with pytest.raises(BasefuseError, match="node id n2"):
        run_experiment(cfg, tmp_path / "run", executor=ex, progress=False)
    assert ex.executed == 0 and not (tmp_path / "run").exists()
    # every local path the jobs read: not the hub checkpoint (fetched per node), nor a1 (only planning reads it)
    assert sorted(ex.asked) == sorted([str(base.resolve()), str(tmp_path / "data" / "t1.csv")])


@pytest.mark.usefixtures("isolated_cache")
def test_a_builtin_base_absent_on_a_node_is_extracted_into_that_nodes_cache(fake_minilm, tmp_path, monkeypatch):
    from basefuse.finetuning.api import base_fingerprint
    from basefuse.models import resolve_model

    driver = resolve_model("minilm")  # planning extracted it into the driver's cache
    ref = {"base": driver, **origin_of("minilm", driver), "fingerprint": base_fingerprint(driver)}
    shutil.rmtree(driver)
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "node-cache"))  # this node's own cache
    here = model_path_of(tmp_path, ref)
    assert here != driver and Path(here).is_relative_to(tmp_path / "node-cache")
    assert base_fingerprint(here) == ref["fingerprint"]
