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
    python benchmarks/fuse_speed.py --n 5 --runs 1 --methods regmean   # statistics on sms_spam (--data-task)

`--preset llama` (issue 19): N synthetic 1.1B-parameter Llama-style models in bf16 (2 GB shards + index) and their
base, `basefuse fuse --base B --dtype bfloat16` vs mergekit `linear` (bf16) vs the read floor (`cat` of every input
file), each with the page cache cold (dropped before every run: `sync; echo 3 > /proc/sys/vm/drop_caches` where
permitted, else `posix_fadvise(DONTNEED)` on every input file) and warm (every input read once just before),
in interleaved rounds. The models for the largest N are built once (the smaller N use the first sources);
`--models DIR` reuses a folder built before (its base/, ft0/ ... ft<N-1>/).

    python benchmarks/fuse_speed.py --preset llama --n 5 10 --runs 3 --workdir /big/disk [--models DIR]
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
import zlib
from collections.abc import Callable
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


# ---- decoder preset: synthetic 1.1B Llama-style bf16 models (issue 19) -------------------------------------

LLAMA = {"hidden_size": 2048, "num_hidden_layers": 22, "intermediate_size": 5632, "num_attention_heads": 32,
         "num_key_value_heads": 4, "vocab_size": 32000}
SHARD_BYTES = 2 * 10**9


def llama_shapes(c: dict = LLAMA) -> list[tuple[str, tuple[int, ...]]]:
    """Tensor names and shapes of a LlamaForCausalLM with config `c` (untied lm_head), in a checkpoint's order."""
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    kv = h // c["num_attention_heads"] * c["num_key_value_heads"]
    out = [("model.embed_tokens.weight", (v, h))]
    for layer in range(c["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        out += [(p + "self_attn.q_proj.weight", (h, h)), (p + "self_attn.k_proj.weight", (kv, h)),
                (p + "self_attn.v_proj.weight", (kv, h)), (p + "self_attn.o_proj.weight", (h, h)),
                (p + "mlp.gate_proj.weight", (i, h)), (p + "mlp.up_proj.weight", (i, h)),
                (p + "mlp.down_proj.weight", (h, i)), (p + "input_layernorm.weight", (h,)),
                (p + "post_attention_layernorm.weight", (h,))]
    return out + [("model.norm.weight", (h,)), ("lm_head.weight", (v, h))]


def _write_safetensors(path: Path, tensors: list[tuple[str, tuple[int, ...], "np.ndarray"]]) -> None:
    """A bf16 safetensors file written by hand from uint16 bit arrays (the format: u64 length, JSON, bytes)."""
    import struct

    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, bits in tensors:
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + bits.nbytes]}
        off += bits.nbytes
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for _, _, bits in tensors:
            f.write(bits.tobytes())


def build_llama(root: Path, n: int) -> tuple[Path, list[Path]]:
    """Base (N(0, 0.02) weights, norms at 1) + n finetunes (base with every bf16 value moved by -2..+2 units in
    the last place), as LlamaForCausalLM folders: bf16, 2 GB shards + index, config.json, generation_config.json.

    Built with numpy from bit patterns (no torch: 11 x 2.2 GB must build in minutes); a finetune's offsets come
    from one 16 M-value pool rolled by a per-tensor, per-model amount, so the sources differ from each other."""
    import numpy as np

    shapes = llama_shapes()
    rng = np.random.default_rng(0)
    pool = rng.integers(-2, 3, size=1 << 24, dtype=np.int16).astype(np.uint16)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "bfloat16",
              "hidden_act": "silu", "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
              "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, **LLAMA}

    def base_bits(name: str, shape: tuple[int, ...]) -> "np.ndarray":
        if len(shape) == 1:
            return np.full(shape, 0x3F80, dtype=np.uint16)  # 1.0
        g = np.random.default_rng(zlib.crc32(name.encode()))
        x = g.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
        bits = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation: any bf16 values will do
        bits[(bits & 0x7FFF) < 0x10] = 0x3C00  # no (near-)zeros: -2 units from +0 would wrap into NaN bits
        return bits

    folders = [root / "base", *(root / f"ft{k}" for k in range(n))]
    for f in folders:
        f.mkdir(parents=True)
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    used = 0
    for name, shape in shapes:
        nbytes = 2 * int(np.prod(shape))
        if shards[-1] and used + nbytes > SHARD_BYTES:
            shards.append([])
            used = 0
        shards[-1].append((name, shape))
        used += nbytes
    names = [f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors" for s in range(len(shards))]
    for si, shard in enumerate(shards):
        base = [(name, shape, base_bits(name, shape)) for name, shape in shard]
        _write_safetensors(folders[0] / names[si], base)
        for k in range(n):
            moved = []
            for ti, (name, shape, bits) in enumerate(base):
                shift = (k * 7919 + ti * 104729 + si) % pool.size
                flat = bits.reshape(-1)
                reps = -(-flat.size // pool.size)
                delta = np.resize(np.roll(pool, shift), flat.size) if reps > 1 else np.roll(pool, shift)[:flat.size]
                moved.append((name, shape, (flat + delta).reshape(shape)))
            _write_safetensors(folders[k + 1] / names[si], moved)
            del moved
        del base
    total = sum(2 * int(np.prod(s)) for _, s in shapes)
    index = {"metadata": {"total_size": total},
             "weight_map": {name: names[si] for si, shard in enumerate(shards) for name, _ in shard}}
    for f in folders:
        (f / "model.safetensors.index.json").write_text(json.dumps(index))
        (f / "config.json").write_text(json.dumps(config))
        (f / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    return folders[0], folders[1:]


DATA_METHODS = {"fisher": "fisher", "regmean": "gram"}  # method -> its sidecars' kind


def copy_tokenizer(folder: Path) -> None:
    """minilm's tokenizer into the synthetic base (BertConfig's vocabulary is the same 30522 tokens): the data-aware
    methods tokenize each source's task with the base's tokenizer."""
    from basefuse.checkpoints.ref import resolve_ref
    from basefuse.checkpoints.source import TOKENIZER_FILES

    src = resolve_ref("minilm").folder
    for f in TOKENIZER_FILES:
        if (src / f).exists() and not (folder / f).exists():
            shutil.copy(src / f, folder / f)


def drop_sidecars(method: str, srcs: list[Path], cache: Path) -> None:
    """Remove every statistics sidecar of `method` (beside the sources or in the cache), so the next run computes
    them."""
    for folder in [*srcs, cache / "fusion-stats"]:
        for f in folder.glob(f"basefuse-{DATA_METHODS[method]}-*.safetensors"):
            f.unlink()


def measure(cmd: list[str], out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=True)
    res = json.loads(r.stdout)
    shutil.rmtree(out, ignore_errors=True)
    if res["rc"] != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {res['err']}")
    return res


def drop_page_cache(files: list[Path]) -> str:
    """Evict `files` from the page cache; returns how (drop_caches needs root and a writable /proc/sys)."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "drop_caches"
    except OSError:
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        return "posix_fadvise(DONTNEED)"


def warm_page_cache(files: list[Path]) -> None:
    subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)


def main_llama(args: argparse.Namespace, mk: str | None) -> None:
    """The decoder preset: basefuse (first fuse / digests cached) vs mergekit vs `cat`, cold and warm."""
    top = max(args.n)
    made = None
    if args.models:
        models = Path(args.models)
    else:
        made = models = Path(tempfile.mkdtemp(prefix="basefuse-bench-llama-", dir=args.workdir))
        print(f"building {top} synthetic 1.1B Llama-style bf16 models + base in {models} ...", flush=True)
        build_llama(models, top)
    scratch = Path(tempfile.mkdtemp(prefix="basefuse-bench-run-", dir=args.workdir))
    rows, how = [], set()
    try:
        for n in args.n:
            base, srcs = models / "base", [models / f"ft{k}" for k in range(n)]
            inputs = sorted(f for d in [base, *srcs] for f in d.iterdir() if f.suffix == ".safetensors")
            out = scratch / "out"
            os.environ["BASEFUSE_CACHE"] = str(scratch / f"cache-n{n}")
            bf = [sys.executable, "-m", "basefuse", "fuse", *map(str, srcs), "--base", str(base), "--dtype",
                  "bfloat16", "--out", str(out), "--no-progress"]
            measure(bf, out)  # primes the sha256 cache for the "digests cached" variant
            tools = {"basefuse, first fuse": [*bf, "--no-hash-cache"], "basefuse, digests cached": bf,
                     "read floor (cat)": ["cat", *map(str, inputs)]}
            if mk:
                cfg = scratch / f"mergekit-n{n}.yml"
                cfg.write_text("merge_method: linear\ndtype: bfloat16\nmodels:\n" + "".join(
                    f"  - model: {s}\n    parameters:\n      weight: 1.0\n" for s in srcs))
                # no tokenizer to copy in synthetic models (mergekit would try to build one, and fail, at the end)
                tools["mergekit linear"] = [mk, "-m", "mergekit.scripts.run_yaml", str(cfg), str(out),
                                            "--no-copy-tokenizer"]
            results: dict[tuple[str, str], list[dict]] = {}
            for r in range(args.runs):  # interleaved: every tool and cache state once per round
                for cache in ("cold", "warm"):
                    for name, cmd in tools.items():
                        if cache == "cold":
                            how.add(drop_page_cache(inputs))
                        else:
                            warm_page_cache(inputs)
                        res = measure(cmd, out)
                        res["load"] = os.getloadavg()[0]
                        results.setdefault((cache, name), []).append(res)
                        print(f"N={n} round {r + 1} {cache:4} {name:26} {res['wall']:7.2f} s "
                              f"{res['rss'] / 1e9:5.2f} GB  load {res['load']:.1f}", flush=True)
            for (cache, name), rs in results.items():
                rows.append({"n": n, "cache": cache, "tool": name,
                             "input_gb": sum(f.stat().st_size for f in inputs) / 1e9,
                             "wall_s": statistics.median(r["wall"] for r in rs),
                             "rss_gb": statistics.median(r["rss"] for r in rs) / 1e9,
                             "walls": [round(r["wall"], 2) for r in rs], "loads": [round(r["load"], 1) for r in rs]})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    print(f"\ncold page cache by: {', '.join(sorted(how))}\n")
    print("| N | page cache | tool | wall s (median) | peak RSS GB | / mergekit | / read floor | runs (s) | load |")
    print("|---|---|---|---:|---:|---:|---:|---|---|")
    for r in rows:
        same = [x for x in rows if x["n"] == r["n"] and x["cache"] == r["cache"]]
        floor = next(x["wall_s"] for x in same if x["tool"] == "read floor (cat)")
        mkw = next((x["wall_s"] for x in same if x["tool"] == "mergekit linear"), None)
        r["vs_mergekit"] = r["wall_s"] / mkw if mkw else None
        r["vs_floor"] = r["wall_s"] / floor
        vs_mk = "" if mkw is None else f"{r['vs_mergekit']:.2f}"
        print(f"| {r['n']} | {r['cache']} | {r['tool']} | {r['wall_s']:.2f} | {r['rss_gb']:.2f} | {vs_mk} | "
              f"{r['vs_floor']:.2f} | {r['walls']} | {r['loads']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=["bert", "llama"], default="bert",
                    help="bert: fp32 BERT-base finetunes (default); llama: 1.1B Llama-style bf16 models, cold and warm")
    ap.add_argument("--n", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mergekit-python", default=os.environ.get("MERGEKIT_PYTHON"))
    ap.add_argument("--workdir", default=None, help="where synthetic models go (default: a temp dir)")
    ap.add_argument("--models", default=None, help="llama: reuse models built before in this folder (kept)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--methods", nargs="+", default=["average"],
                    help="basefuse methods to time (those other than average fuse with --base and default params; "
                         "fisher and regmean twice: computing their statistics, then reusing the sidecars)")
    ap.add_argument("--data-task", default="sms_spam", help="fisher, regmean: every source's task (a built-in one)")
    ap.add_argument("--stats-n", type=int, default=None,
                    help="fisher, regmean: examples per source (default: the method's own default)")
    args = ap.parse_args()
    mk = args.mergekit_python or (str(ROOT / ".venv-bench/bin/python")
                                  if (ROOT / ".venv-bench/bin/python").exists() else None)
    if mk and subprocess.run([mk, "-c", "import mergekit"], capture_output=True).returncode != 0:
        print(f"note: {mk} cannot import mergekit; skipping it")
        mk = None
    if not mk:
        print("note: mergekit not found (pass --mergekit-python or set MERGEKIT_PYTHON); skipping it")
    if args.preset == "llama":
        main_llama(args, mk)
        return
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
            prepare: dict[str, Callable[[], None]] = {}
            for m in args.methods:
                cmd = [*bf, "--no-hash-cache", "--base", str(base), "--method", m]
                if m in DATA_METHODS:  # each source's statistics on a built-in task, then the sidecars reused
                    copy_tokenizer(base)
                    cmd += [a for s in srcs for a in ("--data", f"{s}={args.data_task}")]
                    cmd += ["--param", f"n={args.stats_n}"] if args.stats_n else []
                    computed = f"basefuse {m} (statistics computed)"
                    tools[computed] = cmd
                    prepare[computed] = lambda m=m: drop_sidecars(m, srcs, root / "cache")
                    tools[f"basefuse {m} (sidecars reused)"] = cmd
                elif m != "average":
                    tools[f"basefuse {m}"] = cmd
            if mk:
                cfg = root / "mergekit.yml"
                cfg.write_text("merge_method: linear\ndtype: float32\nmodels:\n" + "".join(
                    f"  - model: {t}\n    parameters:\n      weight: 1.0\n" for t in twins))
                tools["mergekit linear"] = [mk, "-m", "mergekit.scripts.run_yaml", str(cfg), str(out)]
            results: dict[str, list[dict]] = {k: [] for k in tools}
            for _ in range(args.runs):  # interleave tools so machine noise hits all alike
                for name, cmd in tools.items():
                    prepare.get(name, lambda: None)()
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
