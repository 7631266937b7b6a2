"""Wall time of an experiment with the graph scheduler vs the old barrier per dependency depth.

Runs `basefuse demo`'s config (or CONFIG) on the process executor, once per schedule and repeat, each run in a
fresh subprocess and a fresh run directory (so nothing is reused and each peak RSS is that run's alone), with the
same cache; schedules alternate (graph, barriers, barriers, graph, ...) so machine load hits both alike. Prints
the median wall time and peak RSS of each schedule:

    python benchmarks/schedule.py --workers 2 --repeats 3                # the demo config: about 30 min on 2 cores
    python benchmarks/schedule.py --tiny --repeats 1                      # a smoke test: tiny budgets, one target

Wall time covers run_experiment after the workers started: planning (task loading, from the cache) and every job.
Peak RSS: the driver process, and the largest worker process.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SCHEDULES = ("graph", "barriers")


def tiny(data: dict) -> dict:
    """The config cut to a smoke test: one target, one seed, a few dozen examples per job, one epoch."""
    small = {"max_epochs": 1, "max_length": 16, "max_eval": 40, "max_test": 40, "eval_every": 100}
    return data | {"targets": data["targets"][:1], "seeds": data["seeds"][:1],
                   "budgets": {"max_train_source": 48, "max_train_target": 32},
                   "source_finetune": data["source_finetune"] | small, "finetune": data["finetune"] | small}


def load_config(path: Path | None, small: bool) -> dict:
    from basefuse.experiments.config import builtin_config_path

    data = yaml.safe_load(Path(path or builtin_config_path("demo")).read_text(encoding="utf-8"))
    return tiny(data) if small else data


def run_one(schedule: str, config: Path, run_dir: Path, workers: int) -> dict:
    """In the worker subprocess: one whole experiment with `schedule`; its wall time and peak RSS."""
    from basefuse.executors import ProcessPoolExecutor
    from basefuse.experiments.config import load_experiment_config
    from basefuse.experiments.runner import run_experiment

    cfg = load_experiment_config(config)
    with ProcessPoolExecutor(workers) as pool:
        pool.start()  # worker start-up stays outside the timing
        t0 = time.perf_counter()
        summary = run_experiment(cfg, run_dir, executor=pool, progress=False, schedule=schedule)
        wall = time.perf_counter() - t0
    if summary.failures:
        raise SystemExit(f"{len(summary.failures.failed)} job(s) failed: see {run_dir / 'failures.json'}")
    return {"schedule": schedule, "wall_s": round(wall, 2), "jobs": summary.jobs_executed,
            "driver_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "worker_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def table(rows: list[dict], workers: int) -> str:
    lines = [f"process executor, {workers} workers; median of {len(rows) // len(SCHEDULES)} run(s) per schedule",
             "", "| schedule | jobs | wall s (median) | runs (s) | peak RSS driver MiB | peak RSS worker MiB |",
             "|---|---:|---:|---|---:|---:|"]
    med = {}
    for s in SCHEDULES:
        mine = [r for r in rows if r["schedule"] == s]
        med[s] = statistics.median(r["wall_s"] for r in mine)
        runs = ", ".join(f"{r['wall_s']:.1f}" for r in mine)
        lines.append(f"| {s} | {mine[0]['jobs']} | {med[s]:.1f} | {runs} | "
                     f"{max(r['driver_rss_mib'] for r in mine):.0f} | {max(r['worker_rss_mib'] for r in mine):.0f} |")
    lines.append(f"\ngraph / barriers wall time: {med['graph'] / med['barriers']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=None, help="experiment config (default: the demo's)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="cut the config to a smoke test")
    p.add_argument("--workdir", type=Path, default=None, help="where the run directories go (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="also write every run's numbers here")
    p.add_argument("--worker", nargs=3, metavar=("SCHEDULE", "CONFIG", "RUN_DIR"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        schedule, config, run_dir = args.worker
        print("RESULT " + json.dumps(run_one(schedule, Path(config), Path(run_dir), args.workers)), flush=True)
        return 0

    with tempfile.TemporaryDirectory(prefix="basefuse-schedule-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        config = work / "config.yaml"
        config.write_text(yaml.safe_dump(load_config(args.config, args.tiny), sort_keys=False), encoding="utf-8")
        rows = []
        for rep in range(args.repeats):
            for schedule in SCHEDULES if rep % 2 == 0 else SCHEDULES[::-1]:
                run_dir = work / f"run-{schedule}-{rep}"  # fresh: nothing reused
                cmd = [sys.executable, __file__, "--workers", str(args.workers), "--worker", schedule, str(config),
                       str(run_dir)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                if proc.returncode or line is None:
                    print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                    return 1
                rows.append(json.loads(line[len("RESULT "):]))
                print(f"run {rep + 1} {schedule}: {rows[-1]['wall_s']:.1f} s", flush=True)
    print(table(rows, args.workers))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
