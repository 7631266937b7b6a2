"""What a `probe` job costs against a `finetune` job: same base, same targets, same budgets, same process.

Both jobs run through `execute_job` as an experiment runs them, with paper-cpu's target settings
(`src/basefuse/configs/paper-cpu.yaml`: its `finetune:` block, max_train_target 300, max_test 500; the probe uses
the same max_length 32, max_eval 200 and max_test 500 and ProbeConfig's defaults otherwise) on the built-in minilm
model, 2 threads. Per task and repeat, interleaved so machine load hits all alike:

- `finetune`: one target finetune (seed = repeat);
- `probe (cold)`: one probe with the feature cache of this base and task deleted first (the first probe of a base
  on a task: the rows it uses, its seed's draw of the train budget and the capped validation and test rows, go
  through the frozen model once);
- `probe (warm)`: one probe with another seed: validation and test from the cache, and only the train rows of its
  draw not extracted yet (what each further seed of that base and task costs).

Wall time (perf_counter) and process CPU time (all threads) around `execute_job`; libraries are imported and the
data loaded once before timing starts. Prints medians per task and kind, ratios finetune / probe, and JSON lines.

    BASEFUSE_CACHE=/tmp/bench-cache python benchmarks/probe_cost.py --tasks trec_coarse sms_spam bbc_news --repeats 3
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from basefuse.data.api import load_task
from basefuse.experiments.config import builtin_config_path, load_experiment_config
from basefuse.experiments.jobs import execute_job, make_job
from basefuse.finetuning.api import base_fingerprint
from basefuse.io import cache_dir
from basefuse.models import resolve_model
from basefuse.probing.config import ProbeConfig

KINDS = ("finetune", "probe (cold)", "probe (warm)")


def task_params(name: str, budget: int) -> dict:
    return {"name": name, "spec": name, "text_col": "text", "label_col": "label", "pair_col": None,
            "family": None, "fingerprint": load_task(name, max_train=budget).fingerprint}


def timed(job: dict, run_dir: Path, threads: int) -> dict:
    cpu, wall = time.process_time(), time.perf_counter()
    summary = execute_job(job, str(run_dir), device="cpu", threads=threads)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
            "accuracy": summary["accuracy"]}


def summarise(rows: list[dict], budget: int, threads: int, repeats: int) -> None:
    """Medians per task and kind, and the median over repeats of the within-repeat ratio finetune / probe (robust
    to load that changes between repeats on a shared machine)."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    print(f"\nminilm, max_train {budget}, {threads} threads, medians of {repeats} repeats")
    print("| task | kind | wall s | CPU s | test accuracy | finetune / this, wall | finetune / this, CPU |")
    print("|---|---|---|---|---|---|---|")
    at = {(r["task"], r["kind"], r["repeat"]): r for r in rows}
    reps = sorted({r["repeat"] for r in rows})
    med = {}
    for t in tasks:
        for kind in KINDS:
            sel = [r for r in rows if r["task"] == t and r["kind"] == kind]
            med[t, kind] = {k: statistics.median(r[k] for r in sel) for k in ("wall_s", "cpu_s", "accuracy")}
            done = [i for i in reps if (t, "finetune", i) in at and (t, kind, i) in at]
            ratio = {k: statistics.median(at[t, "finetune", i][k] / at[t, kind, i][k] for i in done)
                     for k in ("wall_s", "cpu_s")}
            m = med[t, kind]
            print(f"| {t} | {kind} | {m['wall_s']:.1f} | {m['cpu_s']:.1f} | {m['accuracy']:.3f} | "
                  f"{ratio['wall_s']:.1f} | {ratio['cpu_s']:.1f} |")
    for kind in KINDS:
        tot = {k: sum(med[t, kind][k] for t in tasks) for k in ("wall_s", "cpu_s")}
        ftot = {k: sum(med[t, "finetune"][k] for t in tasks) for k in ("wall_s", "cpu_s")}
        print(f"| all {len(tasks)} (sum of medians) | {kind} | {tot['wall_s']:.1f} | {tot['cpu_s']:.1f} | | "
              f"{ftot['wall_s'] / tot['wall_s']:.1f} | {ftot['cpu_s'] / tot['cpu_s']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["trec_coarse", "sms_spam", "bbc_news"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--summarise", metavar="LOG", help="only summarise the JSON lines of an earlier run's output")
    args = ap.parse_args()
    if args.summarise:
        rows = [json.loads(x) for x in Path(args.summarise).read_text().splitlines() if x.startswith("{")]
        summarise(rows, 300, args.threads, len({r["repeat"] for r in rows}))
        return

    cfg = load_experiment_config(builtin_config_path("paper-cpu"))
    budget, ft = cfg.budgets.max_train_target, cfg.finetune
    probe_cfg = ProbeConfig(max_length=ft.max_length, max_eval=ft.max_eval, max_test=ft.max_test)
    base = resolve_model(cfg.base_model)
    model = {"base": base, "fingerprint": base_fingerprint(base)}
    params = {t: task_params(t, budget) for t in args.tasks}
    load_encoder_once = __import__("basefuse.probing.features", fromlist=["load_encoder"]).load_encoder
    load_encoder_once(base)  # imports transformers' model code before timing
    import sklearn.linear_model  # noqa: F401  (imported before timing, as in a long-running worker)

    rows = []
    with tempfile.TemporaryDirectory(prefix="probe-cost-") as tmp:
        for rep in range(args.repeats):
            for t in args.tasks:
                common = {"model": model, "task": params[t], "max_train": budget}
                jobs = {
                    "finetune": make_job("finetune", t, common | {"hparams": ft.model_dump(mode="json"),
                                                                  "seed": rep, "save": False}),
                    "probe (cold)": make_job("probe", t, common | {"hparams": probe_cfg.model_dump(mode="json"),
                                                                   "seed": rep}),
                    "probe (warm)": make_job("probe", t, common | {"hparams": probe_cfg.model_dump(mode="json"),
                                                                   "seed": 100 + rep}),
                }
                for kind, job in jobs.items():
                    if kind == "probe (cold)":
                        shutil.rmtree(cache_dir() / "features", ignore_errors=True)
                    r = timed(job.to_dict(), Path(tmp) / f"r{rep}-{t}-{kind.split()[0]}{len(kind)}", args.threads)
                    rows.append({"task": t, "kind": kind, "repeat": rep} | r)
                    print(json.dumps(rows[-1]), flush=True)

    summarise(rows, budget, args.threads, args.repeats)

if __name__ == "__main__":
    main()
