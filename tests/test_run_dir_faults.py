"""Issue 8, runtime part: one owner per run directory, leftovers of dead processes, unreadable store lines and
run/config files, unwritable run directories. (End-to-end faults are in tests/faults/.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from basefuse import io
from basefuse.errors import BasefuseError
from basefuse.experiments.config import load_experiment_config, parse_experiment_config
from basefuse.experiments.rundir import own_run_dir, read_run_dir, remove_leftovers
from basefuse.experiments.results import write_results
from basefuse.experiments.runner import run_experiment
from basefuse.experiments.store import JobStore

MINIMAL = {"families": {"a": ["t1", "t2"]}}  # valid config; a refused run never gets as far as loading tasks


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def stale(folder, name: str, pid: int, kind: str = "tmp"):
    """A temporary named as `io.temp_name` names them, owned by `pid`."""
    return folder / f".{name}.{kind}-{pid}-{io._host_tag()}-0badc0de"


def test_run_dir_lock_refuses_a_second_owner_naming_the_holder(tmp_path):
    with own_run_dir(tmp_path):
        with pytest.raises(BasefuseError, match=rf"in use by process {os.getpid()}\b"):
            with own_run_dir(tmp_path):
                pass
    with own_run_dir(tmp_path):  # released when the holder is done
        pass


def test_two_concurrent_experiments_second_gets_one_line_exit_2(tmp_path):
    """A process holds the run directory; `basefuse experiment` on it stops at once, naming that process."""
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from basefuse.experiments.rundir import own_run_dir\n"
        f"with own_run_dir(Path({str(run)!r})):\n    print('held', flush=True); time.sleep(120)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        cfg = tmp_path / "exp.yaml"
        cfg.write_text(yaml.safe_dump(MINIMAL))
        p = subprocess.run([sys.executable, "-m", "basefuse", "experiment", str(cfg), "--out", str(run)],
                           capture_output=True, text=True, env=os.environ | {"BASEFUSE_CACHE": str(tmp_path)})
    finally:
        holder.kill()
        holder.wait()
    assert p.returncode == 2, p.stderr
    assert f"in use by process {holder.pid}" in p.stderr and p.stderr.count("\n") == 1
    assert sorted(x.name for x in run.iterdir()) == [".lock"]  # nothing else written


def test_report_waits_for_no_writer_but_may_read_results_so_far_elsewhere(tmp_path):
    with own_run_dir(tmp_path):
        with pytest.raises(BasefuseError, match="being written by process"):
            with read_run_dir(tmp_path, writes_inside=True):
                pass
        with read_run_dir(tmp_path, writes_inside=False):  # a report outside the folder: results so far
            pass
    with read_run_dir(tmp_path, writes_inside=True):
        with pytest.raises(BasefuseError, match="in use by another process"):  # no experiment starts meanwhile
            with own_run_dir(tmp_path):
                pass


def test_results_jsonl_is_not_written_through_a_fixed_temporary_name(tmp_path, monkeypatch):
    used = []
    real = os.replace

    def spy(src, dst):
        used.append(os.path.basename(src))
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", spy)
    write_results(tmp_path, [])
    write_results(tmp_path, [])
    assert len(used) == 2 and used[0] != used[1]
    assert all(name.startswith(f".results.jsonl.tmp-{os.getpid()}-") for name in used)


def test_stale_temporaries_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    run = tmp_path / "run"
    (run / "jobs").mkdir(parents=True)
    gone = dead_pid()
    dead = [stale(run / "jobs", "abc123", gone), stale(run, "results.jsonl", gone), stale(run, "report", gone)]
    dead[0].mkdir()
    dead[1].write_text("x")
    dead[2].mkdir()
    live = [stale(run / "jobs", "def456", os.getpid()), stale(run, "run.json", os.getpid())]
    live[0].mkdir()
    live[1].write_text("x")
    foreign = run / "jobs" / f".k.tmp-{gone}-00000000-0badc0de"  # another host's: its pid means nothing here
    foreign.mkdir()
    with own_run_dir(run):
        remove_leftovers(run)
    assert not any(p.exists() for p in dead)
    assert all(p.exists() for p in live) and foreign.exists()


def test_stale_fuse_output_temporary_is_removed_next_to_the_output(tmp_path):
    """`basefuse fuse --out o` (as every output) goes through atomic_output_dir: a dead run's `.o.tmp-*` goes."""
    gone = stale(tmp_path, "o", dead_pid())
    gone.mkdir()
    (gone / "model.safetensors").write_bytes(b"half")
    mine = stale(tmp_path, "o", os.getpid())
    mine.mkdir()
    with io.atomic_output_dir(tmp_path / "o") as tmp:
        (tmp / "a").write_text("a")
        assert os.path.basename(tmp).startswith(f".o.tmp-{os.getpid()}-")
    assert not gone.exists() and mine.exists() and (tmp_path / "o" / "a").exists()


def test_stale_old_copy_is_put_back_when_the_output_is_missing(tmp_path):
    """Killed between moving the old output aside and the new one in: the old one comes back."""
    old = stale(tmp_path, "o", dead_pid(), kind="old")
    old.mkdir()
    (old / "a").write_text("previous")
    io.remove_stale_temporaries(tmp_path, "o")
    assert (tmp_path / "o" / "a").read_text() == "previous" and not old.exists()


def test_store_line_with_non_utf8_bytes_is_skipped_and_resume_appends(tmp_path):
    path = tmp_path / "store.jsonl"
    store = JobStore(path)
    store.append("k1", "finetune", "one", {"accuracy": 0.5})
    with open(path, "ab") as f:
        f.write(b"\xff")  # printf '\xff' >> store.jsonl
    again = JobStore(path)
    assert "k1" in again and again.skipped_lines == 1
    again.append("k2", "finetune", "two", {"accuracy": 0.7})
    third = JobStore(path)
    assert "k1" in third and third.get("k2") == {"accuracy": 0.7} and third.skipped_lines == 1


def test_store_append_on_a_full_disk_is_a_one_line_error(tmp_path, monkeypatch):
    from basefuse.experiments import store as store_mod

    def full(path, rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_mod, "append_jsonl", full)
    with pytest.raises(BasefuseError, match="store.jsonl: No space left on device; free space and rerun"):
        JobStore(tmp_path / "store.jsonl").append("k", "finetune", "x", {})


def test_non_utf8_run_json_is_a_one_line_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_bytes(b'{"config_name": "\xff"}')
    with pytest.raises(BasefuseError, match=r"run\.json is corrupt \(not a UTF-8 JSON object\): pass --force"):
        run_experiment(parse_experiment_config(MINIMAL), run, progress=False)
    assert (run / "run.json").read_bytes() == b'{"config_name": "\xff"}'


def test_non_utf8_yaml_config_is_a_one_line_error(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"name: caf\xe9\nfamilies: {a: [t1, t2]}\n")
    with pytest.raises(BasefuseError, match=r"exp\.yaml: not UTF-8 text \(bad byte at offset 9\)"):
        load_experiment_config(path)


@pytest.fixture
def read_only_run(tmp_path):
    """An existing run directory on a read-only mount (a tmpfs remounted read-only; chmod when not root)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        run = mnt / "run"
        run.mkdir()
        (run / "run.json").write_text(json.dumps({"config_name": "x"}))
        run.chmod(0o555)
        yield run
        run.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        run = mnt / "run"
        run.mkdir()
        (run / "run.json").write_text(json.dumps({"config_name": "x"}))
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield run
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_read_only_run_dir_is_a_one_line_error(read_only_run):
    with pytest.raises(BasefuseError, match="cannot write to the run directory .*: (Read-only file system|"
                                            "Permission denied); choose a writable folder with --out"):
        run_experiment(parse_experiment_config(MINIMAL), read_only_run, progress=False)
