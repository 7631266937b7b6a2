"""Helpers of the fault-injection suite: a fast tiny experiment, starting `basefuse experiment` in a subprocess
and finding what it started, and comparing a rerun with the clean run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shared fixtures of tests/

from builders import CountingExecutor as Counting, make_tiny_experiment  # noqa: E402

from basefuse.executors import LocalExecutor  # noqa: E402
from basefuse.experiments.config import parse_experiment_config  # noqa: E402
from basefuse.experiments.jobs import output_complete  # noqa: E402
from basefuse.experiments.runner import run_experiment  # noqa: E402

# One epoch on 32 rows: results are meaningless but deterministic, and a job takes about a second.
FAST = {"learning_rate": 3e-3, "batch_size": 16, "max_epochs": 1, "max_length": 16, "eval_every": 100,
        "patience": 5, "min_steps": 0}
RUN_FIELDS = ("target", "condition", "source_family", "seed", "weight_decay", "ablation", "iteration")


def fast_config(root: Path) -> dict:
    """x1 as target, pretrained and fused over all other sources, one seed: 7 jobs, namely 4 source finetunes,
    one fusion that needs three of them, and two target finetunes, one of which needs the fusion."""
    data = make_tiny_experiment(root)
    families = {fam: tasks[:2] for fam, tasks in data["families"].items()}
    return data | {"families": families, "seeds": [0], "conditions": ["pretrained", "fused"],
                   "fused_groups": ["all"], "budgets": {"max_train_source": 32, "max_train_target": 32},
                   "source_finetune": FAST, "finetune": FAST}


def prepared(root: Path, data: dict, name: str = "tiny") -> tuple:
    """(root, config dict, config YAML path, plan): what the fault tests need of an experiment."""
    import yaml

    from basefuse.experiments.runner import make_plan

    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return root, data, path, make_plan(parse_experiment_config(data))


def clean_results(prepared_run: tuple) -> dict:
    """The results of an undisturbed run: what every disturbed run must end with."""
    root, data, _, _ = prepared_run
    run_experiment(parse_experiment_config(data), root / "clean", progress=False)
    return results(root / "clean")


def results(run_dir: Path) -> dict[tuple, tuple[float, float]]:
    """results.jsonl by report row; a row written twice would be lost in the dict, so count them too."""
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    out = {tuple(r.get(k) for k in RUN_FIELDS): (r["accuracy"], r["macro_f1"]) for r in rows}
    assert len(out) == len(rows), "a report row is written twice"
    return out


def complete_keys(run_dir: Path, plan) -> set[str]:
    """Jobs whose output is complete on disk: a rerun must not run them again."""
    return {k for k, job in plan.jobs.items() if output_complete(run_dir, job)}


def rerun_and_check(tiny, clean, run_dir: Path) -> Counting:
    """Rerun in this process: the results equal the clean run's, no finished job is redone, nothing is left over."""
    _, data, _, plan = tiny
    done_before = complete_keys(run_dir, plan)
    counting = Counting()
    summary = run_experiment(parse_experiment_config(data), run_dir, executor=counting, progress=False)
    assert not summary.failures
    assert not set(counting.keys) & done_before, "a finished job was run again"
    assert len(counting.keys) == len(set(counting.keys)) == len(plan.jobs) - len(done_before)
    got = results(run_dir)
    assert set(got) == set(clean)
    for row, (acc, f1) in clean.items():
        assert got[row] == pytest.approx((acc, f1), abs=1e-9), row
    assert sorted(stored_keys(run_dir)) == sorted(plan.jobs), "a job is missing from the store or is in it twice"
    assert leftovers(run_dir) == []
    return counting


def stored_keys(run_dir: Path) -> list[str]:
    """The keys of the store's readable lines (a torn or non-UTF-8 line is no record)."""
    keys = []
    for line in (run_dir / "store.jsonl").read_bytes().splitlines():
        try:
            keys.append(json.loads(line.decode("utf-8"))["key"])
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            pass
    return keys


def leftovers(run_dir: Path) -> list[str]:
    return sorted(p.name for d in (run_dir, run_dir / "jobs") if d.is_dir() for p in d.iterdir()
                  if ".tmp-" in p.name or ".old-" in p.name)


def start_cli(config: Path, run_dir: Path, *args: str) -> subprocess.Popen:
    """`basefuse experiment` in its own session (so every process it starts can be found by its group)."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "basefuse", "experiment", str(config), "--out", str(run_dir),
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(condition, proc: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended before the fault could be injected: {err[-2000:]}")
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the run to reach the fault point")
        time.sleep(0.02)


def store_lines(run_dir: Path) -> int:
    try:
        return (run_dir / "store.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _processes() -> dict[int, tuple[str, int, int]]:
    """Every process: pid -> (state, parent pid, process group), read from /proc."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                out[int(d.name)] = (fields[0], int(fields[1]), int(fields[2]))
            except (OSError, IndexError, ValueError):
                continue
    return out


def descendants(pid: int) -> set[int]:
    """Live processes started by `pid` or by those, or in its process group (zombies are dead)."""
    procs = _processes()
    found = {p for p, (_, _, group) in procs.items() if group == pid and p != pid}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for p, (_, ppid, _) in procs.items():
            if ppid == parent and p not in found:
                found.add(p)
                frontier.append(p)
    return {p for p in found if procs[p][0] not in ("Z", "X")}


def still_alive(pids: set[int]) -> set[int]:
    procs = _processes()
    return {p for p in pids if p in procs and procs[p][0] not in ("Z", "X")}


def kill_group(proc: subprocess.Popen) -> None:
    """Clean up after a test: whatever is left of the group goes."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
