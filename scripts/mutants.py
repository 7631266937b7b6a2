"""Curated single-line mutations of the maths and guarantees: each one must make a named test fail.

    python scripts/mutants.py                 # every mutant (about 10 minutes on 2 cores)
    python scripts/mutants.py -k dare -k ties # only mutants whose name contains one of these
    python scripts/mutants.py --list

Each mutant is applied alone to a scratch copy of `src/` (the working tree is never edited), the
copy is put first on PYTHONPATH, and its tests run with a timeout. Every pytest run (the baseline
too) gets its own empty HOME, XDG_CACHE_HOME and BASEFUSE_CACHE (the user's fetched wheels linked
in read-only), so no other basefuse process can touch the cache the suite checks. The outcome is
read from pytest's JUnit XML report, not from its exit status alone:

    killed      pytest exited 1 and a named test failed (or errored in its fixtures): the test ids are shown
    survived    every test passed: a gap in the suite
    timeout     the tests ran past --timeout (counted as killed)
    error       any other end (a collection error, a usage error, exit 1 with no failed test such as the
                suite's own cache check): not a kill
    snippet not found / snippet ambiguous   the source changed: update the snippet

Exit 1 if any mutant survived, ended in an error or was not applied.

A mutant is one line of MUTANTS: (name, file under src/basefuse, exact original snippet, replacement,
tests: files under tests/ or pytest node ids, space-separated). The original snippet must occur exactly once
in the file.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

MUTANTS: list[tuple[str, str, str, str, str]] = [
    # -- the 11 of issue 12 ---------------------------------------------------------------------
    ("source key without task data", "experiments/protocol.py", 'fam) | {"fingerprint": facts[name].fingerprint_source}', "fam)", "test_guarantee_job_keys.py"),
    ("target key without task data", "experiments/protocol.py", 'fam) | {"fingerprint": facts[target].fingerprint_target}', "fam)", "test_guarantee_job_keys.py"),
    ("leak guard ignores fusions", "experiments/leakage.py", "names = {n for dep in job_inputs(job) for n in visit(dep, stack + (key,))}", 'names = {n for dep in job_inputs(job) if jobs[dep].kind != "fuse" for n in visit(dep, stack + (key,))}', "test_guarantee_leakage.py test_leakage.py"),
    ("best weights never restored", "finetuning/loop.py", "model.load_state_dict(best_state)", "None", "test_guarantee_restore_best.py"),
    ("dare without 1/(1-p) rescale", "fusion/methods/dare.py", "tv *= 1.0 / (1.0 - p)", "tv *= 1.0", "test_fusion_reference.py"),
    ("task arithmetic: base subtracted once too few", "fusion/methods/task_arithmetic.py", "out = x[0] - base", "out = x[0] * 1.0", "test_fusion_reference.py"),
    ("base body-shape check disabled", "checkpoints/align.py", "if info.shape != shapes[key]:", "if False:", "test_guarantee_base_shape.py"),
    ("CI level 0.95 -> 0.90", "reports/stats.py", "LEVEL = 0.95", "LEVEL = 0.90", "test_guarantee_stats.py"),
    ("verdict ignores the interval", "reports/stats.py", "return BETTER if lo > 0 else WORSE if hi < 0 else INCONCLUSIVE", "return BETTER if est.mean > 0 else WORSE", "test_guarantee_stats.py"),
    ("recovery of an unrecorded job raises", "experiments/runner.py", "self.store.append(key, job.kind, job.label, recovered_result(self.run_dir, job))", 'raise RuntimeError("mutant")', "test_guarantee_recovery.py"),
    ("sha256 cache ignores size/mtime/inode", "checkpoints/hashing.py", "if hit and hit[:3] == _stamp(path):", "if hit:", "test_guarantee_hash_cache.py"),
    # -- more maths -----------------------------------------------------------------------------
    ("weights not normalised", "fusion/methods/contract.py", "return w / w.sum()", "return w", "test_fusion_reference.py"),
    ("weighted ignores the first weight", "fusion/methods/linear.py", "out = x[0] * float(w[0])", "out = x[0] * 1.0", "test_fusion_reference.py"),
    ("average divides by n+1", "fusion/methods/average.py", "out *= 1.0 / n", "out *= 1.0 / (n + 1)", "test_fusion_reference.py"),
    ("ties elects the first source's sign", "fusion/methods/ties.py", "sign = xp.sign(tv.sum(0))", "sign = xp.sign(tv[0])", "test_fusion_reference.py"),
    ("ties never trims", "fusion/methods/ties.py", "keep = int(math.ceil(density * m))", "keep = m", "test_fusion_reference.py"),
    ("dare mask ignores the tensor name", "fusion/methods/dare.py", "default_rng([int(seed), zlib.crc32(key.encode())])", "default_rng([int(seed), 0])", "test_fusion_reference.py"),
    ("model_stock: cosines summed, not averaged over pairs", "fusion/methods/model_stock.py", "cos /= n * (n - 1) / 2", "cos /= 1", "test_fusion_model_stock.py"),
    ("model_stock: t without the (N-1) cos denominator", "fusion/methods/model_stock.py", "den = 1.0 + (n - 1) * cos", "den = 1.0 + 0 * cos", "test_fusion_model_stock.py"),
    ("breadcrumbs: outliers kept", "fusion/methods/breadcrumbs.py", "tv[mag >= xp.kth_smallest(mag, m - n_top)] = 0", "pass", "test_fusion_breadcrumbs.py"),
    ("breadcrumbs: n_top not reduced when both do not fit", "fusion/methods/breadcrumbs.py", "n_top, n_bot = n_top + n_bot, 0", "n_bot = 0", "test_fusion_breadcrumbs.py"),
    ("slerp: coefficients swapped", "fusion/methods/slerp.py", "s0, s1 = math.sin(theta - theta * t) / math.sin(theta), math.sin(theta * t) / math.sin(theta)", "s1, s0 = math.sin(theta - theta * t) / math.sin(theta), math.sin(theta * t) / math.sin(theta)", "test_fusion_slerp.py"),
    ("dare_ties: election on unweighted task vectors", "fusion/methods/dare_ties.py", "    tv *= wcol\n", "    pass\n", "test_fusion_reference.py"),
    ("dare_ties: normalize ignored", "fusion/methods/dare_ties.py", "    if normalize:\n", "    if False:\n", "test_fusion_reference.py"),
    ("mergekit config: weights' sum not folded into lambda", "fusion/mergekit_config.py", "scale = lam if normalize else lam * total", "scale = lam", "test_fuse_mergekit_config.py"),
    ("old name p taken as the keep probability", "fusion/methods/dare.py", 'Alias("p", "density", lambda v: 1.0 - v,', 'Alias("p", "density", lambda v: v,', "test_fusion_contract.py"),
    ("sha256 cache ignores the inode", "checkpoints/hashing.py", "st.st_mtime_ns, st.st_ino]", "st.st_mtime_ns, 0]", "test_guarantee_hash_cache.py"),
    ("gain not paired by seed", "reports/summary.py", "{s: a[t][s] - b[t][s] for s in", "{s: a[t][s] - b[t][min(b[t])] for s in", "test_report_tables.py test_report_stats.py"),
    ("seed std with ddof=0", "reports/summary.py", "per_target[target] = (float(np.std([mine[target][s] for s in shared], ddof=1)),", "per_target[target] = (float(np.std([mine[target][s] for s in shared], ddof=0)),", "test_report_tables.py"),
    # -- splits, seeds, keys --------------------------------------------------------------------
    ("carve 20% instead of 10%", "data/splits.py", "CARVE_FRACTION = 0.10", "CARVE_FRACTION = 0.20", "test_data_splits.py test_data_files.py"),
    ("carve at most 2000", "data/splits.py", "CARVE_MAX = 1000", "CARVE_MAX = 2000", "test_data_splits.py test_data_files.py"),
    ("batch order ignores the seed", "finetuning/loop.py", "rng = np.random.default_rng(seed)", "rng = np.random.default_rng(0)", "test_guarantee_seed.py"),
    ("source finetunes ignore source_seed", "experiments/protocol.py", '"seed": cfg.source_seed,', '"seed": 0,', "test_guarantee_job_keys.py"),
    ("job key includes the base path", "experiments/jobs.py", 'if not (k == "base" and "fingerprint" in obj)', "if True", "test_experiment_protocol.py"),
    ("target left in its own family pool", "experiments/protocol.py", "[s for s in cfg.source_names(fam) if s != target]", "list(cfg.source_names(fam))", "test_experiment_protocol.py"),
    # -- issue 17: the gaps of the red team's mutation check, and its areas -----------------------
    ("leakage: a given validation split not seen", "experiments/leakage.py", 'rows["train"] + rows["validation"]', 'rows["train"]', "test_leakage_given_validation.py"),
    ("leakage: target test texts read from its validation", "experiments/leakage.py", 'test=tuple(map(row_text, rows["test"]))', 'test=tuple(map(row_text, rows["validation"]))', "test_leakage_given_validation.py"),
    ("labels: unseen validation label not refused", "data/build.py", 'for split in ("validation", "test"):', 'for split in ("test",):', "test_data_labels.py"),
    ("labels: class names in reverse order", "data/build.py", "sorted(raw_labels, key=_label_key)", "sorted(raw_labels, key=_label_key, reverse=True)", "test_data_labels.py"),
    ("budget: loader ignores max_train", "data/build.py", "if max_train is not None and max_train < len(train):", "if False:", "test_plan_budgets.py"),
    ("budget: source finetunes get the target budget", "experiments/protocol.py", '"max_train": cfg.budgets.max_train_source, "hparams": src_hp', '"max_train": cfg.budgets.max_train_target, "hparams": src_hp', "test_plan_budgets.py"),
    ("budget: target finetunes get the source budget", "experiments/protocol.py", '"max_train": cfg.budgets.max_train_target, "hparams": hp', '"max_train": cfg.budgets.max_train_source, "hparams": hp', "test_plan_budgets.py"),
    ("budget: source fingerprint with the target budget", "experiments/runner.py", "fingerprint_source=loaded[cfg.budgets.max_train_source].fingerprint", "fingerprint_source=loaded[cfg.budgets.max_train_target].fingerprint", "test_plan_budgets.py"),
    ("budget: a job loads its task without its budget", "experiments/jobs.py", 'max_train=params.get("max_train")', "max_train=None", "test_plan_budgets.py"),
    ("dtype: --dtype casts integer tensors", "fusion/engine.py", "return out_dtype if out_dtype and stored in FLOAT_DTYPES else stored", "return out_dtype if out_dtype else stored", "test_fuse_dtype_integers.py"),
    ("dtype: --dtype ignored", "fusion/engine.py", "return out_dtype if out_dtype and stored in FLOAT_DTYPES else stored", "return stored", "test_fuse_dtype_integers.py"),
    ("precision: finetune keeps a bf16 checkpoint's dtype", "finetuning/api.py", "    model.float()\n", "", "test_finetune_precision.py"),
    ("precision: bf16 asked for is used on CPU", "finetuning/loop.py", "bf16 = use_bf16(device, config.bf16)", "bf16 = config.bf16", "test_finetune_precision.py"),
    ("head: source head carried into the target", "finetuning/api.py", "    _fresh_head(model)\n", "", "test_finetune_fresh_head.py"),
    ("head: only the head's bias reset", "finetuning/api.py", "torch.nn.init.normal_(module.weight, 0.0, std)", "module.weight.data", "test_finetune_fresh_head.py"),
    ("head: the body re-initialised, not the head", "finetuning/api.py", "if child is body:", "if child is not body:", "test_finetune_fresh_head.py"),
    ("scheduler: only a job's first dependency awaited", "experiments/runner.py", "deps = [d for d in self.plan.jobs[key].deps if d not in done]", "deps = [d for d in self.plan.jobs[key].deps[:1] if d not in done]", "test_scheduler.py::test_a_job_starts_only_after_all_of_its_dependencies_end"),
    ("scheduler: only a job's last dependency awaited", "experiments/runner.py", "deps = [d for d in self.plan.jobs[key].deps if d not in done]", "deps = [d for d in self.plan.jobs[key].deps[-1:] if d not in done]", "test_scheduler.py::test_a_job_starts_only_after_all_of_its_dependencies_end"),
    ("scheduler: a job starts when any dependency ends", "experiments/runner.py", "self.missing[key] = len(deps)", "self.missing[key] = min(len(deps), 1)", "test_scheduler.py::test_a_job_starts_only_after_all_of_its_dependencies_end"),
    ("scheduler: one job more in flight than workers", "experiments/runner.py", "len(self.in_flight) < self.executor.workers", "len(self.in_flight) <= self.executor.workers", "test_scheduler.py"),
    ("resources: a worker's GPU ignored", "executors/base.py", 'if self.gpu is None or requested not in (None, "cuda"):', "if True:", "test_executor_resources.py::test_a_workers_gpu_pins_the_jobs_device_unless_the_job_asked_otherwise"),
    ("resume: a torn store line crashes the load", "experiments/store.py", "except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):", "except (UnicodeDecodeError, KeyError, TypeError):", "test_scheduler.py::test_torn_last_store_line_is_skipped_its_job_recovered_not_rerun_and_results_unchanged"),
    ("resume: a torn line's job is run again", "experiments/runner.py", "            if output_complete(self.run_dir, job):", "            if key in self.store and output_complete(self.run_dir, job):", "test_scheduler.py::test_torn_last_store_line_is_skipped_its_job_recovered_not_rerun_and_results_unchanged"),
    ("resume: an append joins the torn line", "io.py", 'if f.read(1) != b"\\n":', "if False:", "test_scheduler.py::test_torn_last_store_line_is_skipped_its_job_recovered_not_rerun_and_results_unchanged"),
    ("resume: a recovered job is never stored", "experiments/runner.py", "if key not in self.store:  # finished but not recorded", "if False:  # finished but not recorded", "test_scheduler.py::test_torn_last_store_line_is_skipped_its_job_recovered_not_rerun_and_results_unchanged"),
]


@dataclass(frozen=True)
class Outcome:
    """How one pytest run ended: `status` is killed, survived, timeout or error; `detail` says why."""

    status: str
    detail: str = ""


def user_cache() -> Path:
    """The cache basefuse would use for this user (the rule of `basefuse.io.cache_dir`)."""
    if os.environ.get("BASEFUSE_CACHE"):
        return Path(os.environ["BASEFUSE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "basefuse"


def isolated_env(root: Path, scratch: Path, wheels: list[Path]) -> dict[str, str]:
    """Environment of one pytest run: the scratch copy first on PYTHONPATH, and a HOME, XDG_CACHE_HOME and
    BASEFUSE_CACHE of its own under `root` (fresh), holding links to the user's fetched wheels."""
    home, xdg, cache = root / "home", root / "xdg-cache", root / "basefuse-cache"
    for d in (home, xdg, cache / "wheels"):
        d.mkdir(parents=True)
    for whl in wheels:
        (cache / "wheels" / whl.name).symlink_to(whl)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(scratch), str(ROOT / "tests")]),
                HOME=str(home), XDG_CACHE_HOME=str(xdg), BASEFUSE_CACHE=str(cache),
                OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")


def failed_tests(report: Path) -> list[str]:
    """Ids of the test cases the JUnit XML report marks failed or errored ([] if there is no report)."""
    try:
        root = ET.parse(report).getroot()
    except (OSError, ET.ParseError):
        return []
    return [f"{case.get('classname')}::{case.get('name')}" for case in root.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None]


def judge(returncode: int, failed: list[str], output: str) -> Outcome:
    """A kill needs pytest's "tests failed" exit and a failed test it names; any other end is an error."""
    if returncode == 0:
        return Outcome("survived")
    if returncode == 1 and failed:
        return Outcome("killed", ", ".join(f.rsplit(".", 1)[-1] for f in failed[:2]))
    tail = (output.strip().splitlines() or ["?"])[-1]
    why = "no failed test in the report" if returncode == 1 else f"pytest exit {returncode}"
    return Outcome("error", f"{why}: {tail[:100]}")


def run_pytest(files: list[str], scratch: Path, wheels: list[Path], timeout: float | None,
               stop_first: bool = True) -> Outcome:
    """Run the named test files against the scratch copy in a fresh isolated environment."""
    with tempfile.TemporaryDirectory(prefix="basefuse-mutant-run-") as tmp:
        env = isolated_env(Path(tmp), scratch, wheels)
        report = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", *(["-x"] if stop_first else []), "-q", "-p", "no:cacheprovider",
               "-o", "addopts=", f"--junitxml={report}", *[f"tests/{t}" for t in files]]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Outcome("timeout")
        return judge(proc.returncode, failed_tests(report), proc.stdout + proc.stderr)


def run_one(scratch: Path, wheels: list[Path], rel: str, old: str, new: str, tests: str,
            timeout: float) -> Outcome:
    original = (SRC / "basefuse" / rel).read_text(encoding="utf-8")
    if original.count(old) != 1:
        return Outcome("snippet not found" if old not in original else "snippet ambiguous")
    target = scratch / "basefuse" / rel
    target.write_text(original.replace(old, new), encoding="utf-8")
    try:
        return run_pytest(tests.split(), scratch, wheels, timeout)
    finally:
        target.write_text(original, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", action="append", default=[], help="only mutants whose name contains this (repeatable)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant's test run")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = ap.parse_args()
    chosen = [m for m in MUTANTS if not args.k or any(k in m[0] for k in args.k)]
    if args.list:
        for m in chosen:
            print(f"{m[0]:48} {m[1]:26} {m[4]}")
        return 0
    real_wheels = user_cache() / "wheels"
    wheels = sorted(real_wheels.glob("*.whl")) if real_wheels.is_dir() else []
    with tempfile.TemporaryDirectory(prefix="basefuse-mutants-") as tmp:
        scratch = Path(tmp) / "src"
        shutil.copytree(SRC, scratch, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        env = dict(os.environ, PYTHONPATH=str(scratch))
        where = subprocess.run([sys.executable, "-c", "import basefuse; print(basefuse.__file__)"], env=env,
                               capture_output=True, text=True).stdout.strip()
        if not where.startswith(str(scratch)):
            print(f"the scratch copy is not the one imported ({where}): check the environment", file=sys.stderr)
            return 2
        # Baseline: unmutated, every named test must pass, or a "killed" would mean nothing.
        files = sorted({t for m in chosen for t in m[4].split()})
        base = run_pytest(files, scratch, wheels, timeout=None, stop_first=False)
        if base.status != "survived":
            print(f"the unmutated tests do not pass ({base.status}: {base.detail}), so no mutant can be judged",
                  file=sys.stderr)
            return 2
        print(f"baseline: {len(files)} test files or node ids pass unmutated", flush=True)
        results = []
        for name, rel, old, new, tests in chosen:
            t0 = time.perf_counter()
            outcome = run_one(scratch, wheels, rel, old, new, tests, args.timeout)
            results.append((name, rel, outcome))
            detail = f"  [{outcome.detail}]" if outcome.detail else ""
            print(f"{outcome.status:18} {time.perf_counter() - t0:6.1f} s  {name} ({rel}){detail}", flush=True)
    count = {s: sum(r[2].status == s for r in results) for s in ("killed", "timeout", "survived", "error")}
    bad = [r for r in results if r[2].status not in ("killed", "timeout")]
    print(f"\n{len(results)} mutants: {count['killed']} killed, {count['timeout']} timeout, "
          f"{count['survived']} survived, {count['error']} error, "
          f"{len(bad) - count['survived'] - count['error']} not applied")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
