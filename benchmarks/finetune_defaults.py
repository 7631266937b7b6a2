"""Old vs new finetuning defaults on built-in tasks and train sizes: does training length now adapt to the data?

"old" is the loop before issue 10 (lr 1e-4, 3 epochs and nothing more, validation every 50 steps, no gradient
clipping); "new" is `FinetuneConfig()` as it stands. Both score the same fixed validation and test subsets
(`--max-eval`, `--max-test`, to keep the sweep within minutes on a 2-core CPU). One CSV row per run, appended
as each run ends, so an interrupted sweep keeps what it measured.

    python benchmarks/finetune_defaults.py --out docs/results/finetune-defaults/sweep.csv
    python benchmarks/finetune_defaults.py --out docs/results/finetune-defaults/sweep.csv --summarise
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

OLD = {"learning_rate": 1e-4, "min_steps": 0, "eval_every": 50, "max_grad_norm": None}
FIELDS = ["task", "max_train", "variant", "seed", "test_accuracy", "test_macro_f1", "val_accuracy", "steps",
          "best_step", "stopped_early", "eval_every", "learning_rate", "train_seconds", "wall_seconds"]


def run_one(task: str, size: int, variant: str, seed: int, max_eval: int, max_test: int) -> dict:
    from basefuse.finetuning.api import finetune
    from basefuse.finetuning.config import FinetuneConfig

    settings = (OLD if variant == "old" else {}) | {"max_train": size, "max_eval": max_eval, "max_test": max_test}
    cfg = FinetuneConfig(**settings)
    t0 = time.perf_counter()
    m = finetune("minilm", task, config=cfg, seed=seed, progress=False)
    return {"task": task, "max_train": m["n"]["train"], "variant": variant, "seed": seed,
            "test_accuracy": round(m["accuracy"], 4), "test_macro_f1": round(m["macro_f1"], 4),
            "val_accuracy": round(m["validation"]["accuracy"], 4), "steps": m["steps"], "best_step": m["best_step"],
            "stopped_early": m["stopped_early"], "eval_every": m["eval_every"], "learning_rate": cfg.learning_rate,
            "train_seconds": m["train_seconds"], "wall_seconds": round(time.perf_counter() - t0, 1)}


def summarise(path: Path) -> str:
    """A markdown table: one line per (task, train size, seed), old and new side by side."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by = {(r["task"], int(r["max_train"]), r["seed"], r["variant"]): r for r in rows}
    lines = ["| task | train | seed | old: steps | old: test acc | new: steps (best) | new: test acc | gain |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for task, size, seed in sorted({k[:3] for k in by}, key=lambda k: (k[0], k[1], k[2])):
        old, new = by.get((task, size, seed, "old")), by.get((task, size, seed, "new"))
        if old is None or new is None:
            continue
        gain = 100 * (float(new["test_accuracy"]) - float(old["test_accuracy"]))
        lines.append(f"| {task} | {size} | {seed} | {old['steps']} | {float(old['test_accuracy']):.3f} "
                     f"| {new['steps']} ({new['best_step']}) | {float(new['test_accuracy']):.3f} | {gain:+.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["trec_coarse", "vader_tweets", "bbc_news"])
    p.add_argument("--sizes", nargs="+", type=int, default=[100, 300, 1000])
    p.add_argument("--variants", nargs="+", default=["old", "new"], choices=["old", "new"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--max-eval", type=int, default=200)
    p.add_argument("--max-test", type=int, default=500)
    p.add_argument("--out", type=Path, required=True, help="CSV to append rows to (header written if new)")
    p.add_argument("--summarise", action="store_true", help="print the CSV as a markdown table and exit")
    args = p.parse_args(argv)
    if args.summarise:
        print(summarise(args.out))
        return 0
    done = set()
    if args.out.exists():  # resume: skip runs already in the CSV
        with open(args.out, newline="") as f:
            done = {(r["task"], r["max_train"], r["variant"], r["seed"]) for r in csv.DictReader(f)}
    for seed in args.seeds:
        for task in args.tasks:
            for size in args.sizes:
                for variant in args.variants:
                    if (task, str(size), variant, str(seed)) in done:
                        continue
                    row = run_one(task, size, variant, seed, args.max_eval, args.max_test)
                    new_file = not args.out.exists()
                    with open(args.out, "a", newline="") as f:
                        w = csv.DictWriter(f, fieldnames=FIELDS)
                        if new_file:
                            w.writeheader()
                        w.writerow(row)
                    print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
