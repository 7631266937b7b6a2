"""Planning time with the leakage check's new views (tokenizer view, near-duplicates) vs the code before them.

Plans a config (default: paper-cpu, the 9 built-in tasks, every one a target) with `make_plan`, each time in a fresh
subprocess, and times that one call (process CPU time and wall time; imports excluded, task loading from the
cache included). Three modes, interleaved per repeat so machine load hits all alike:

- `before`: the code before this change (`--baseline-src`, a checkout's `src` folder, e.g. a worktree of main);
- `after (cold)`: this code with its leakage cache removed first (the first plan of these tasks on a machine);
- `after (warm)`: this code with the cache of the previous plan (every later plan, e.g. the run after a dry run).

    mkdir /tmp/before && git archive f52ed61 src | tar -x -C /tmp/before
    python benchmarks/leakage_cost.py --baseline-src /tmp/before/src --repeats 5 --cache /tmp/bench-cache

Prints the median per mode, the ratios to `before`, and (from an `after` plan) the largest exact and near-duplicate
overlap per target: a plan that planning refuses would be a false positive and stops the benchmark.
`--cache`: BASEFUSE_CACHE for the subprocesses (the leakage cache there is deleted for the cold mode).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("before", "after (cold)", "after (warm)")


def plan_once(config: str) -> dict:
    """In the subprocess: one make_plan, timed."""
    from basefuse.experiments.config import builtin_config_path, load_experiment_config
    from basefuse.experiments.runner import make_plan

    cfg = load_experiment_config(builtin_config_path(config) if not config.endswith(".yaml") else config)
    cpu, wall = time.process_time(), time.perf_counter()
    plan = make_plan(cfg)
    out = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, "jobs": len(plan.jobs)}
    rows = plan.leakage["rows"]
    if rows and "near_overlap" in rows[0]:
        from basefuse.experiments.leakage import largest_per_target

        out["largest"] = [{k: r[k] for k in ("target", "base", "n_test", "overlap", "near_overlap")}
                          for r in largest_per_target(plan.leakage)]
    return out


def measure(mode: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ, BASEFUSE_CACHE=str(args.cache)) if args.cache else dict(os.environ)
    src = args.baseline_src if mode == "before" else ROOT / "src"
    env["PYTHONPATH"] = str(src)
    if mode == "after (cold)":
        cache = Path(args.cache) if args.cache else Path(os.path.expanduser("~/.cache/basefuse"))
        shutil.rmtree(cache / "leakage", ignore_errors=True)
    code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import leakage_cost as b; " \
           f"print('RESULT ' + json.dumps(b.plan_once({args.config!r})))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise SystemExit(f"{mode}: planning failed (a false positive?):\n{proc.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-src", type=Path, required=True, help="src/ of a checkout of the code before")
    ap.add_argument("--config", default="paper-cpu", help="a built-in config name or a YAML path")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=None, help="BASEFUSE_CACHE for the subprocesses")
    args = ap.parse_args()
    got: dict[str, list[dict]] = {m: [] for m in MODES}
    for r in range(args.repeats):
        order = MODES if r % 2 == 0 else tuple(reversed(MODES[:2])) + MODES[2:]  # the warm mode needs a plan before
        for mode in order:
            got[mode].append(measure(mode, args))
            print(f"repeat {r + 1} {mode}: cpu {got[mode][-1]['cpu_s']:.2f} s, wall {got[mode][-1]['wall_s']:.2f} s",
                  flush=True)
    med = {m: {k: statistics.median(x[k] for x in got[m]) for k in ("cpu_s", "wall_s")} for m in MODES}
    print(f"\nconfig {args.config}, {args.repeats} repeats, median of make_plan in a fresh process:")
    print("| mode | CPU s | wall s | CPU / before | wall / before | runs, CPU s |")
    print("|---|---|---|---|---|---|")
    for m in MODES:
        runs = ", ".join(f"{x['cpu_s']:.2f}" for x in got[m])
        print(f"| {m} | {med[m]['cpu_s']:.2f} | {med[m]['wall_s']:.2f} | {med[m]['cpu_s'] / med['before']['cpu_s']:.2f} "
              f"| {med[m]['wall_s'] / med['before']['wall_s']:.2f} | {runs} |")
    print("\nlargest overlap per target (exact / near-duplicates only):")
    for row in got["after (warm)"][-1].get("largest", []):
        print(f"  {row['target']}: {row['overlap']} / {row['near_overlap']} of {row['n_test']} ({row['base']})")


if __name__ == "__main__":
    main()
