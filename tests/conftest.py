"""Shared fixtures, and the session's cache isolation.

At start-up (before any test module is imported, so libraries that read their cache location at
import see it) BASEFUSE_CACHE and HF_HOME point into one temporary folder for the session, so the
suite never writes the user's caches (the sha256 cache included: it lives in BASEFUSE_CACHE). The
user's already-fetched built-in wheels are linked into it read-only, so the slow real-data tests
need no network when the wheels are there. At the end the user's cache must be unchanged (names,
sizes and mtimes): if not, the run fails.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from builders import save_base, user_cache

ISOLATED = ("BASEFUSE_CACHE", "HF_HOME", "BASEFUSE_WHEELHOUSE")


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and mtime (a directory's mtime changes when entries come or go)."""
    out: dict[str, tuple[int, int]] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size if not p.is_dir() else 0, st.st_mtime_ns)
    return out


def pytest_configure(config: pytest.Config) -> None:
    real = user_cache()
    tmp = Path(tempfile.mkdtemp(prefix="basefuse-tests-"))
    config.stash[_STATE] = {"tmp": tmp, "real": real, "before": listing(real),
                            "env": {k: os.environ.get(k) for k in ISOLATED}}
    os.environ["BASEFUSE_CACHE"] = str(tmp / "cache")
    os.environ["HF_HOME"] = str(tmp / "hf")
    os.environ.pop("BASEFUSE_WHEELHOUSE", None)
    wheels = tmp / "cache" / "wheels"
    wheels.mkdir(parents=True)
    for whl in sorted((real / "wheels").glob("*.whl")) if (real / "wheels").is_dir() else []:
        (wheels / whl.name).symlink_to(whl)  # read only: a bad digest unlinks the link, not the file


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    after = listing(state["real"])
    changed = sorted(k for k in set(after) | set(state["before"]) if after.get(k) != state["before"].get(k))
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = (f"the user's cache {state['real']} changed during the tests (by the suite or by another "
               f"process): {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}")
        if reporter is not None:
            reporter.write_line(f"ERROR: {msg}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    for k, v in state["env"].items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    shutil.rmtree(state["tmp"], ignore_errors=True)


_STATE = pytest.StashKey[dict]()


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty BASEFUSE_CACHE (and no wheelhouse) for one test: for tests that look inside the cache."""
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BASEFUSE_WHEELHOUSE", raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """One tiny random BERT with a word-level tokenizer, built once per session (tests only read it)."""
    return save_base(tmp_path_factory.mktemp("tiny-bert") / "model")


@pytest.fixture
def cli(capsys):
    """Run the `basefuse` CLI in-process: cli(args) -> (exit code, stdout, stderr)."""
    from basefuse.cli.main import main

    def run(args) -> tuple[int, str, str]:
        capsys.readouterr()  # drop what fixtures printed (e.g. save_pretrained progress bars)
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code or 0
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
