"""Benchmark `basefuse fuse` against a naive load-everything torch average and mergekit `linear`.

Builds N synthetic BERT-base (fp32) finetunes from `BertConfig()`: base = random init, each source =
base + small noise, a classifier head with its own num_labels. Each tool runs as a whole separate
process (start-up counts), wrapped by a fresh process that reads wall time and peak RSS
(`getrusage(RUSAGE_CHILDREN)`). Median of --runs runs. All tools run in the same session, so the
ratios are comparable on a noisy shared machine.

Sources are saved as two shards (body / head) so mergekit, which stops on differing head shapes,
gets its own folders that hard-link the same body shard and carry an equal 2-label head.

    python benchmarks/fuse_speed.py --n 5 10 --runs 3 [--mergekit-python .venv-bench/bin/python]
    python benchmarks/fuse_speed.py --n 5 --runs 1 --methods average ties dare_linear model_stock
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WRAPPER = textwrap.dedent("""
    import json, resource, subprocess, sys, time
    t = time.perf_counter()
    r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"rc": r.returncode, "wall": wall, "rss": rss, "err": r.stderr.decode()[-400:]}))
""")

NAIVE = textwrap.dedent("""
    # Naive average: load every source fully into memory, average the shared body, save.
    import json, sys
    from pathlib import Path
    import torch
    from safetensors.torch import load_file, save_file
    out, srcs = Path(sys.argv[1]), sys.argv[2:]
    states = []
    for s in srcs:
        sd = {}
        for f in sorted(Path(s).glob("*.safetensors")):
            sd.update(load_file(f))
        states.append({k.removeprefix("bert."): v for k, v in sd.items() if k.startswith("bert.")})
    keys = [k for k in states[0] if all(k in s and s[k].shape == states[0][k].shape for s in states)]
    avg = {k: torch.stack([s[k] for s in states]).mean(0) for k in keys}
    out.mkdir(parents=True)
    save_file(avg, str(out / "model.safetensors"), metadata={"format": "pt"})
""")


def build_models(root: Path, n: int) -> tuple[Path, list[Path], list[Path]]:
    """Base + n finetunes (heads of differing num_labels) + mergekit twins with equal heads."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig()
    base_model = BertModel(cfg, add_pooling_layer=True)
    body = {k: v.contiguous() for k, v in base_model.state_dict().items()}
    base = root / "base"
    base.mkdir(parents=True)
    save_file(body, str(base / "model.safetensors"), metadata={"format": "pt"})
    cfg.architectures = ["BertModel"]
    cfg.to_json_file(base / "config.json")
    srcs, twins = [], []
    for i in range(n):
        gen = torch.Generator().manual_seed(i + 1)
        labels = 2 + i
        d = root / f"ft{i}"
        d.mkdir()
        sd = {f"bert.{k}": v + 1e-3 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
              for k, v in body.items()}
        save_file(sd, str(d / "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
        del sd
        twin = root / f"mk{i}"
        twin.mkdir()
        os.link(d / "model-00001-of-00002.safetensors", twin / "model-00001-of-00002.safetensors")
        for folder, k in ((d, labels), (twin, 2)):
            head = {"classifier.weight": torch.randn(k, cfg.hidden_size, generator=gen),
                    "classifier.bias": torch.zeros(k)}
            save_file(head, str(folder / "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
            names = {f"bert.{k2}": "model-00001-of-00002.safetensors" for k2 in body}
            names |= {h: "model-00002-of-00002.safetensors" for h in head}
            (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": names}))
            c = BertConfig(num_labels=k)
            c.architectures = ["BertForSequenceClassification"]
            c.to_json_file(folder / "config.json")
        srcs.append(d)
        twins.append(twin)
    return base, srcs, twins


def measure(cmd: list[str], out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=True)
    res = json.loads(r.stdout)
    shutil.rmtree(out, ignore_errors=True)
    if res["rc"] != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {res['err']}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mergekit-python", default=os.environ.get("MERGEKIT_PYTHON"))
    ap.add_argument("--workdir", default=None, help="where synthetic models go (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--methods", nargs="+", default=["average"],
                    help="basefuse methods to time (those other than average fuse with --base and default params)")
    args = ap.parse_args()
    mk = args.mergekit_python or (str(ROOT / ".venv-bench/bin/python")
                                  if (ROOT / ".venv-bench/bin/python").exists() else None)
    if mk and subprocess.run([mk, "-c", "import mergekit"], capture_output=True).returncode != 0:
        print(f"note: {mk} cannot import mergekit; skipping it")
        mk = None
    if not mk:
        print("note: mergekit not found (pass --mergekit-python or set MERGEKIT_PYTHON); skipping it")
    rows = []
    for n in args.n:
        root = Path(tempfile.mkdtemp(prefix=f"basefuse-bench-n{n}-", dir=args.workdir))
        try:
            print(f"building {n} synthetic BERT-base finetunes in {root} ...", flush=True)
            base, srcs, twins = build_models(root, n)
            (root / "naive.py").write_text(NAIVE)
            out = root / "out"
            os.environ["BASEFUSE_CACHE"] = str(root / "cache")
            bf = [sys.executable, "-m", "basefuse", "fuse", *map(str, srcs), "--out", str(out), "--no-progress"]
            measure(bf, out)  # primes the sha256 cache for the warm variant
            tools = {
                "basefuse": [*bf, "--no-hash-cache"],
                "basefuse (sha256 cache warm)": bf,
                "naive torch average": [sys.executable, str(root / "naive.py"), str(out), *map(str, srcs)],
            }
            for m in args.methods:
                if m != "average":
                    tools[f"basefuse {m}"] = [*bf, "--no-hash-cache", "--base", str(base), "--method", m]
            if mk:
                cfg = root / "mergekit.yml"
                cfg.write_text("merge_method: linear\ndtype: float32\nmodels:\n" + "".join(
                    f"  - model: {t}\n    parameters:\n      weight: 1.0\n" for t in twins))
                tools["mergekit linear"] = [mk, "-m", "mergekit.scripts.run_yaml", str(cfg), str(out)]
            results: dict[str, list[dict]] = {k: [] for k in tools}
            for _ in range(args.runs):  # interleave tools so machine noise hits all alike
                for name, cmd in tools.items():
                    results[name].append(measure(cmd, out))
            for name, rs in results.items():
                rows.append({"n": n, "tool": name, "wall_s": statistics.median(r["wall"] for r in rs),
                             "rss_gb": statistics.median(r["rss"] for r in rs) / 1e9,
                             "walls": [round(r["wall"], 2) for r in rs]})
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print("| N | tool | wall s (median) | peak RSS GB (median) | wall / basefuse wall | runs (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        bf = next(x for x in rows if x["n"] == r["n"] and x["tool"] == "basefuse")
        r["ratio"] = r["wall_s"] / bf["wall_s"]
        print(f"| {r['n']} | {r['tool']} | {r['wall_s']:.2f} | {r['rss_gb']:.2f} | {r['ratio']:.2f} | {r['walls']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
