"""Jobs per minute of an experiment's target finetunes: N worker processes vs one by one.

Runs pending target-finetune jobs of a config's plan (after its sources and fusions are done, e.g. by a
`basefuse experiment` run stopped early) in the same run directory, so every job it runs is a real result
of that experiment. Usage:

    python benchmarks/jobs_throughput.py CONFIG RUN_DIR --jobs 24 --workers 8 [--device cuda]

It times `--jobs` pending jobs with the process executor and `--workers` processes, then the next
`--sequential-jobs` pending ones one by one in-process, and prints jobs/min of each and the ratio.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from basefuse.executors import LocalExecutor, ProcessPoolExecutor
from basefuse.experiments.config import load_experiment_config
from basefuse.experiments.jobs import output_complete
from basefuse.experiments.runner import make_plan, run_jobs
from basefuse.experiments.store import JobStore


def timed(executor, plan, jobs, run_dir: Path, device: str | None) -> float:
    """Run `jobs` through the experiment's own scheduler (recorded in the store, results.jsonl rewritten)."""
    t0 = time.perf_counter()
    outcome = run_jobs(plan, run_dir, executor, only=[j.key for j in jobs], device=device)
    seconds = time.perf_counter() - t0
    if outcome.failures:
        raise SystemExit(f"{len(outcome.failures.failed)} job(s) failed: see {run_dir / 'failures.json'}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--jobs", type=int, default=24)
    ap.add_argument("--sequential-jobs", type=int, default=6)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    plan = make_plan(load_experiment_config(args.config))
    store = JobStore(args.run_dir / "store.jsonl")
    missing = [j for j in list(plan.source_jobs().values()) + list(plan.fuse_jobs().values())
               if not output_complete(args.run_dir, j)]
    if missing:
        raise SystemExit(f"{len(missing)} source/fusion jobs are not done yet: run the experiment first")
    pending = [j for j in plan.target_jobs().values() if j.key not in store]
    par, seq = pending[:args.jobs], pending[args.jobs:args.jobs + args.sequential_jobs]
    with ProcessPoolExecutor(args.workers) as pool:
        pool.start()  # worker start-up stays outside the timing
        t_par = timed(pool, plan, par, args.run_dir, args.device)
    with LocalExecutor() as local:
        t_seq = timed(local, plan, seq, args.run_dir, args.device)
    rows = {"parallel": {"workers": args.workers, "jobs": len(par), "seconds": round(t_par, 1),
                         "jobs_per_min": round(60 * len(par) / t_par, 1)},
            "sequential": {"workers": 1, "jobs": len(seq), "seconds": round(t_seq, 1),
                           "jobs_per_min": round(60 * len(seq) / t_seq, 1)}}
    rows["speedup"] = round(rows["parallel"]["jobs_per_min"] / rows["sequential"]["jobs_per_min"], 2)
    print("| executor | workers | jobs | seconds | jobs/min |\n|---|---:|---:|---:|---:|")
    for name in ("sequential", "parallel"):
        r = rows[name]
        print(f"| {name} | {r['workers']} | {r['jobs']} | {r['seconds']} | {r['jobs_per_min']} |")
    print(f"speed-up: {rows['speedup']}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
