"""scripts/mutants.py tells a failing test from any other pytest exit (issue 17: the suite's cache check exits 1
with every test passed, which used to count as a kill) and runs each mutant's tests with a cache of its own."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutants.py"


@pytest.fixture(scope="module")
def mutants():
    spec = importlib.util.spec_from_file_location("mutants_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def run_tree(tmp_path: Path, test_body: str, conftest: str = "") -> tuple[int, Path, str]:
    """Run pytest on a one-test tree the way mutants.py does (JUnit report), in its own process."""
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "test_one.py").write_text(f"def test_one():\n    {test_body}\n")
    report = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           f"--junitxml={report}", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True)
    return proc.returncode, report, proc.stdout + proc.stderr


# What tests/conftest.py does when another process touched the user's cache: every test passed, exit 1.
CACHE_CHECK = ("import pytest\n\ndef pytest_sessionfinish(session, exitstatus):\n"
               "    session.exitstatus = pytest.ExitCode.TESTS_FAILED\n")


def test_exit_1_with_every_test_passed_is_an_error_not_a_kill(mutants, tmp_path):
    code, report, out = run_tree(tmp_path, "assert True", CACHE_CHECK)
    assert code == 1 and mutants.failed_tests(report) == []
    assert mutants.judge(code, mutants.failed_tests(report), out).status == "error"


def test_a_failing_test_is_a_kill_naming_the_test(mutants, tmp_path):
    code, report, out = run_tree(tmp_path, "assert 1 == 2")
    outcome = mutants.judge(code, mutants.failed_tests(report), out)
    assert (code, outcome.status) == (1, "killed") and "test_one" in outcome.detail


def test_other_exits_are_errors_and_a_clean_pass_survives(mutants):
    assert mutants.judge(0, [], "").status == "survived"
    for code in (2, 3, 4, 5):  # interrupted (e.g. a collection error), internal error, usage error, no tests
        assert mutants.judge(code, ["t::x"], "boom").status == "error"


def test_failed_tests_reads_failures_and_errors_from_the_report(mutants, tmp_path):
    report = tmp_path / "r.xml"
    report.write_text('<testsuites><testsuite><testcase classname="tests.test_a" name="test_ok"/>'
                      '<testcase classname="tests.test_a" name="test_bad"><failure message="x"/></testcase>'
                      '<testcase classname="tests.test_b" name="test_fixture"><error message="y"/></testcase>'
                      "</testsuite></testsuites>")
    assert mutants.failed_tests(report) == ["tests.test_a::test_bad", "tests.test_b::test_fixture"]
    assert mutants.failed_tests(tmp_path / "missing.xml") == []


def test_each_run_gets_its_own_home_and_caches_with_the_wheels_linked(mutants, tmp_path):
    wheel = tmp_path / "user" / "x-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"wheel")
    env = mutants.isolated_env(tmp_path / "run", tmp_path / "scratch", [wheel])
    for var in ("HOME", "XDG_CACHE_HOME", "BASEFUSE_CACHE"):
        assert Path(env[var]).is_dir() and Path(env[var]).is_relative_to(tmp_path / "run"), var
    linked = Path(env["BASEFUSE_CACHE"]) / "wheels" / wheel.name
    assert linked.is_symlink() and linked.resolve() == wheel.resolve()
    assert env["PYTHONPATH"].split(":")[0] == str(tmp_path / "scratch")
