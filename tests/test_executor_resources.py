"""Executors pass explicit resources to each job: CPU threads reach `finetune` as an argument, the process
executor gives each worker a GPU of its own on a several-GPU machine (the GPU count injected: no GPU here),
and the runner never closes an executor it was given."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from basefuse.executors import LocalExecutor, ProcessPoolExecutor, Resources
from basefuse.executors.local import gpu_slots
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.runner import run_experiment

from builders import make_tiny_experiment

FAST = {"learning_rate": 3e-3, "batch_size": 16, "max_epochs": 1, "max_length": 16, "eval_every": 100,
        "patience": 5, "min_steps": 0}


def test_worker_i_gets_gpu_i_mod_n_on_several_gpus_and_none_on_one():
    assert gpu_slots(5, 2) == [0, 1, 0, 1, 0]
    assert gpu_slots(3, 4) == [0, 1, 2]
    assert gpu_slots(3, 1) == [None, None, None]  # one GPU: "cuda" already means it
    assert gpu_slots(2, 0) == [None, None]


def test_a_workers_gpu_pins_the_jobs_device_unless_the_job_asked_otherwise():
    assert Resources(threads=1, gpu=1).device(None) == "cuda:1"
    assert Resources(threads=1, gpu=1).device("cuda") == "cuda:1"
    assert Resources(threads=1, gpu=1).device("cpu") == "cpu"
    assert Resources(threads=1, gpu=1).device("cuda:0") == "cuda:0"
    assert Resources(threads=1).device("cuda") == "cuda" and Resources(threads=1).device(None) is None


def report_resources(job: dict, resources: Resources) -> dict:
    """Check in, then wait until every job has checked in: so each job holds a worker of its own."""
    import torch

    folder = Path(job["folder"])
    (folder / str(os.getpid())).write_text("")
    end = time.monotonic() + 120
    while len(list(folder.iterdir())) < job["n"] and time.monotonic() < end:
        time.sleep(0.05)
    return {"pid": os.getpid(), "gpu": resources.gpu, "threads": resources.threads,
            "torch_threads": torch.get_num_threads()}


def test_process_executor_gives_each_worker_its_gpu_and_threads(tmp_path):
    with ProcessPoolExecutor(2, threads=1, gpus=2) as ex:
        for _ in range(2):
            ex.submit(report_resources, {"folder": str(tmp_path), "n": 2})
        got = []
        while len(got) < 2:
            got += [result for _, result in ex.wait()]
    assert len({r["pid"] for r in got}) == 2
    assert sorted(r["gpu"] for r in got) == [0, 1]
    assert all(r["threads"] == 1 and r["torch_threads"] == 1 for r in got)


class Tracked(LocalExecutor):
    closed = False

    def close(self) -> None:
        self.closed = True


def test_threads_reach_finetune_and_a_given_executor_stays_open(tmp_path):
    data = make_tiny_experiment(tmp_path, conditions=["pretrained"], seeds=[0], finetune=FAST,
                                source_finetune=FAST, budgets={"max_train_source": 32, "max_train_target": 32})
    threads = (os.cpu_count() or 1) + 1  # neither finetune's default (every core) nor OMP_NUM_THREADS=1
    ex = Tracked(threads=threads)
    summary = run_experiment(parse_experiment_config(data), tmp_path / "run", executor=ex, progress=False)
    assert summary.jobs_executed == 1 and not summary.failures
    (metrics,) = (tmp_path / "run" / "jobs").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["threads"] == threads
    assert not ex.closed
    ex.close()
