"""Curated single-line mutations of the maths and guarantees: each one must make a named test fail.

    python scripts/mutants.py                 # every mutant (about 10 minutes on 2 cores)
    python scripts/mutants.py -k dare -k ties # only mutants whose name contains one of these
    python scripts/mutants.py --list

Each mutant is applied alone to a scratch copy of `src/` (the working tree is never edited), the
copy is put first on PYTHONPATH, and its tests run with a timeout. The table says killed (a test
failed), survived (every test passed: a gap in the suite), timeout (counted as killed) or
"snippet not found" (the source changed: update the snippet). Exit 1 if any survived or is not found.

A mutant is one line of MUTANTS: (name, file under src/basefuse, exact original snippet, replacement,
test files). The original snippet must occur exactly once in the file.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

MUTANTS: list[tuple[str, str, str, str, str]] = [
    # -- the 11 of issue 12 ---------------------------------------------------------------------
    ("source key without task data", "experiments/protocol.py", 'fam) | {"fingerprint": facts[name].fingerprint_source}', "fam)", "test_guarantee_job_keys.py"),
    ("target key without task data", "experiments/protocol.py", 'fam) | {"fingerprint": facts[target].fingerprint_target}', "fam)", "test_guarantee_job_keys.py"),
    ("leak guard ignores fusions", "experiments/leakage.py", "names = {n for dep in job_inputs(job) for n in visit(dep, stack + (key,))}", 'names = {n for dep in job_inputs(job) if jobs[dep].kind != "fuse" for n in visit(dep, stack + (key,))}', "test_guarantee_leakage.py test_leakage.py"),
    ("best weights never restored", "finetuning/loop.py", "model.load_state_dict(best_state)", "None", "test_guarantee_restore_best.py"),
    ("dare without 1/(1-p) rescale", "fusion/methods.py", "tv *= 1.0 / (1.0 - p)", "tv *= 1.0", "test_fusion_reference.py"),
    ("task arithmetic: base subtracted once too few", "fusion/methods.py", "out = x[0] - base", "out = x[0] * 1.0", "test_fusion_reference.py"),
    ("base body-shape check disabled", "checkpoints/align.py", "if info.shape != shapes[key]:", "if False:", "test_guarantee_base_shape.py"),
    ("CI level 0.95 -> 0.90", "reports/stats.py", "LEVEL = 0.95", "LEVEL = 0.90", "test_guarantee_stats.py"),
    ("verdict ignores the interval", "reports/stats.py", "return BETTER if lo > 0 else WORSE if hi < 0 else INCONCLUSIVE", "return BETTER if est.mean > 0 else WORSE", "test_guarantee_stats.py"),
    ("recovery of an unrecorded job raises", "experiments/runner.py", "self.store.append(key, job.kind, job.label, recovered_result(self.run_dir, job))", 'raise RuntimeError("mutant")', "test_guarantee_recovery.py"),
    ("sha256 cache ignores size/mtime/inode", "checkpoints/hashing.py", "if hit and hit[:3] == _stamp(path):", "if hit:", "test_guarantee_hash_cache.py"),
    # -- more maths -----------------------------------------------------------------------------
    ("weights not normalised", "fusion/methods.py", "return w / w.sum()", "return w", "test_fusion_reference.py"),
    ("weighted ignores the first weight", "fusion/methods.py", "out = x[0] * float(w[0])", "out = x[0] * 1.0", "test_fusion_reference.py"),
    ("average divides by n+1", "fusion/methods.py", "out *= 1.0 / n", "out *= 1.0 / (n + 1)", "test_fusion_reference.py"),
    ("ties elects the first source's sign", "fusion/methods.py", "sign = xp.sign(tv.sum(0))", "sign = xp.sign(tv[0])", "test_fusion_reference.py"),
    ("ties never trims", "fusion/methods.py", "keep = int(math.ceil(density * m))", "keep = m", "test_fusion_reference.py"),
    ("dare mask ignores the tensor name", "fusion/methods.py", "default_rng([int(seed), zlib.crc32(key.encode())])", "default_rng([int(seed), 0])", "test_fusion_reference.py"),
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
]


def run_one(scratch: Path, name: str, rel: str, old: str, new: str, tests: str, timeout: float) -> str:
    original = (SRC / "basefuse" / rel).read_text(encoding="utf-8")
    if original.count(old) != 1:
        return "snippet not found" if old not in original else "snippet ambiguous"
    target = scratch / "basefuse" / rel
    target.write_text(original.replace(old, new), encoding="utf-8")
    try:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(scratch), str(ROOT / "tests")]),
                   OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
               *[f"tests/{t}" for t in tests.split()]]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout"
        if proc.returncode == 0:
            return "survived"
        if proc.returncode == 1:
            return "killed"
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["?"]
        return f"error (pytest exit {proc.returncode}: {tail[0][:80]})"
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
        base = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                               *[f"tests/{t}" for t in files]], cwd=ROOT, capture_output=True, text=True,
                              env=dict(env, PYTHONPATH=os.pathsep.join([str(scratch), str(ROOT / "tests")]),
                                       OMP_NUM_THREADS="1"))
        if base.returncode != 0:
            print("the unmutated tests fail, so no mutant can be judged:\n" + base.stdout[-2000:], file=sys.stderr)
            return 2
        print(f"baseline: {len(files)} test files pass unmutated", flush=True)
        results = []
        for name, rel, old, new, tests in chosen:
            t0 = time.perf_counter()
            outcome = run_one(scratch, name, rel, old, new, tests, args.timeout)
            results.append((name, rel, outcome, time.perf_counter() - t0))
            print(f"{outcome:18} {time.perf_counter() - t0:6.1f} s  {name} ({rel})", flush=True)
    bad = [r for r in results if r[2] not in ("killed", "timeout")]
    print(f"\n{len(results)} mutants: {sum(r[2] == 'killed' for r in results)} killed, "
          f"{sum(r[2] == 'timeout' for r in results)} timeout, {len(bad)} survived or not applied")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
