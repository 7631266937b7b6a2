"""Faults injected into a real tiny experiment; after each, a rerun must end with exactly the clean run's results,
nothing lost, no finished job redone and no leftovers (see conftest.rerun_and_check)."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import time

import pytest
import typer

from basefuse.errors import BasefuseError
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.failures import FAILURES
from basefuse.experiments.runner import run_experiment

from fault_helpers import (_processes, descendants, kill_group, leftovers, rerun_and_check, start_cli, still_alive, store_lines,
                      wait_for)

pytestmark = pytest.mark.slow  # each runs (part of) a real experiment: about half a minute on two busy cores


def _temp_in_jobs(run_dir):
    return lambda: (run_dir / "jobs").is_dir() and any(".tmp-" in p.name for p in (run_dir / "jobs").iterdir())


@pytest.mark.parametrize("point", ["mid source finetune", "after the fusion"])
def test_kill_9_local_executor_then_rerun(tiny, clean, tmp_path, point):
    root, _, config, plan = tiny
    run = tmp_path / "run"
    proc = start_cli(config, run)
    try:
        if point == "mid source finetune":  # a job half-written: its temporary folder exists
            wait_for(lambda: store_lines(run) >= 1 and _temp_in_jobs(run)(), proc)
        else:
            wait_for(lambda: store_lines(run) >= len(plan.source_jobs()) + 1, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_group(proc)
    if point == "mid source finetune":
        assert leftovers(run), "the kill should have left the job's temporary folder"
    rerun_and_check(tiny, clean, run)


def test_kill_9_process_executor_workers_die_with_parent_then_rerun(tiny, clean, tmp_path):
    """Issue 8 item 3: kill -9 the parent mid-run; no worker (nor the resource tracker) survives 10 s."""
    _, _, config, _ = tiny
    run = tmp_path / "run"
    proc = start_cli(config, run, "--executor", "process", "--workers", "2")
    try:
        wait_for(lambda: store_lines(run) >= 1 and len(descendants(proc.pid)) >= 3, proc)
        children = descendants(proc.pid)  # two workers and the resource tracker
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        end = time.monotonic() + 10
        while still_alive(children) and time.monotonic() < end:
            time.sleep(0.1)
        assert not still_alive(children), f"processes outlived their killed parent: {still_alive(children)}"
    finally:
        kill_group(proc)
    rerun_and_check(tiny, clean, run)


# Ray's two agents wait for Ray's own timeout (about 60 s, measured) before they notice; they run no job.
RAY_SLOW_TO_EXIT = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _title(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline").read().split("\0")[0].strip()
    except OSError:
        return ""


def test_kill_9_ray_driver_leaves_no_ray_worker(tiny, clean, tmp_path):
    """Ray fate-shares its local cluster with the driver: workers, raylet and GCS are gone within 10 s."""
    pytest.importorskip("ray")
    _, _, config, _ = tiny
    run = tmp_path / "run"
    before = set(_processes())
    proc = start_cli(config, run, "--executor", "ray", "--workers", "2")
    children: set[int] = set()
    try:
        wait_for(lambda: store_lines(run) >= 1, proc, timeout=240)
        # Ray workers are started in sessions of their own: find them by their title as well
        children = descendants(proc.pid) | {p for p in set(_processes()) - before if "ray" in _title(p).lower()}
        titles = {p: _title(p) for p in children}
        assert any("raylet" in t for t in titles.values()), titles
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        end = time.monotonic() + 10
        while still_alive(children) - {p for p, t in titles.items() if t in RAY_SLOW_TO_EXIT} \
                and time.monotonic() < end:
            time.sleep(0.1)
        left = {titles[p] for p in still_alive(children)}
        assert left <= set(RAY_SLOW_TO_EXIT), f"Ray processes outlived their killed driver: {left}"
    finally:
        for p in still_alive(children):
            os.kill(p, signal.SIGKILL)
        kill_group(proc)
    rerun_and_check(tiny, clean, run)


def test_torn_and_non_utf8_store_lines_then_rerun(tiny, clean, tmp_path, capsys):
    root, _, _, plan = tiny
    run = tmp_path / "run"
    shutil.copytree(root / "clean", run)
    store = run / "store.jsonl"
    lines = store.read_bytes().splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]  # the last job's record cut in half by a crash
    store.write_bytes(b"".join(lines[:-1]) + b"\xff\xfe garbage\n" + torn)
    counting = rerun_and_check(tiny, clean, run)
    assert counting.keys == []  # the torn line's job is recovered from its complete output, not redone
    assert "skipped 2 unreadable line(s)" in capsys.readouterr().err


def _fail_on_call(n: int, action):
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return action(*args, **kwargs)

    return wrapped


def test_disk_full_during_a_job_fails_that_job_only_then_rerun_retries(tiny, clean, tmp_path, monkeypatch, capsys):
    """ENOSPC while a source finetune writes its output: that job fails, the fusion and the target run that need
    it are skipped, the pretrained target run goes on; the experiment exits 1 naming the failed job."""
    from basefuse.cli.experiment_cmd import run_and_print
    from basefuse.finetuning import api

    _, _, config, plan = tiny
    run = tmp_path / "run"
    monkeypatch.setattr(api, "write_json", _fail_on_call(2, api.write_json))  # the second source's metrics.json
    with pytest.raises(typer.Exit) as exit_info:
        run_and_print(config, run, force=False, executor="local", workers=1, device=None, dry_run=False)
    assert exit_info.value.exit_code == 1
    failures = json.loads((run / FAILURES).read_text())
    second = list(plan.source_jobs().values())[1]
    assert [f["key"] for f in failures["failed"]] == [second.key]
    assert "No space left on device" in failures["failed"][0]["error"]
    fusion = next(iter(plan.fuse_jobs().values()))
    fused_target = next(j for j in plan.target_jobs().values() if fusion.key in j.deps)
    assert {s["key"] for s in failures["skipped"]} == {fusion.key, fused_target.key}
    skipped_target = next(s for s in failures["skipped"] if s["key"] == fused_target.key)
    assert [r["condition"] for r in skipped_target["runs"]] == ["fused"]
    err = capsys.readouterr().err
    assert f"failed: {second.label}: " in err and "No space left on device" in err
    assert leftovers(run) == []  # the failed job's temporary folder is gone
    monkeypatch.undo()
    counting = rerun_and_check(tiny, clean, run)
    assert sorted(counting.keys) == sorted([second.key, fusion.key, fused_target.key])  # retried, the rest kept
    assert json.loads((run / FAILURES).read_text()) == {"failed": [], "skipped": []}


def test_disk_full_during_the_store_append_then_rerun_recovers(tiny, clean, tmp_path, monkeypatch):
    """ENOSPC while recording a finished job (half a line written): a one-line error; the rerun recovers that job
    from its complete output instead of running it again."""
    from basefuse.experiments import store as store_mod

    _, data, _, _ = tiny
    run = tmp_path / "run"
    real = store_mod.append_jsonl

    def torn_then_full(path, rows):
        with open(path, "ab") as f:
            f.write(json.dumps(rows[0]).encode()[:25])
        raise OSError(errno.ENOSPC, "No space left on device")

    calls = {"n": 0}

    def third_torn(path, rows):
        calls["n"] += 1
        return torn_then_full(path, rows) if calls["n"] == 3 else real(path, rows)

    monkeypatch.setattr(store_mod, "append_jsonl", third_torn)
    with pytest.raises(BasefuseError, match="store.jsonl: No space left on device; free space and rerun"):
        run_experiment(parse_experiment_config(data), run, progress=False)
    monkeypatch.undo()
    rerun_and_check(tiny, clean, run)


def test_two_concurrent_runs_on_one_directory(tiny, clean, tmp_path):
    """The second run stops at once naming the first one's pid; the first one's work is neither redone nor
    stored twice."""
    _, _, config, _ = tiny
    run = tmp_path / "run"
    first = start_cli(config, run)
    try:
        wait_for(lambda: (run / ".lock").exists() and (run / ".lock").read_text().strip() == str(first.pid), first)
        second = start_cli(config, run)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2 and f"in use by process {first.pid}" in err and err.count("\n") == 1
        wait_for(lambda: store_lines(run) >= 2, first)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        kill_group(first)
    rerun_and_check(tiny, clean, run)
