"""Train throughput and peak memory: basefuse's finetune loop against transformers' Trainer.

Same model, data, batch size, max length, epochs, learning-rate schedule, gradient clipping (max-norm 1.0, the
Trainer's default), precision (fp32 on CPU, bf16 autocast on CUDA), seed and threads for both;
each run is a fresh subprocess (so peak RSS / peak CUDA memory belongs to that run alone), runs are
interleaved (basefuse, Trainer, basefuse, ...) so machine load hits both alike, and the table shows
medians over repeats. Trainer gets its own best settings: dynamic padding (DataCollatorWithPadding)
and length-grouped sampling.

    python benchmarks/finetune_speed.py                       # minilm on trec_coarse (built-ins)
    python benchmarks/finetune_speed.py --model synthetic     # random BERT-small on synthetic text, offline
    python benchmarks/finetune_speed.py --markdown docs/benchmarks-finetune.md

"train samples/s" = training examples processed / time of the training phase (optimiser steps only,
no tokenisation, no evaluation); "CPU ms/sample" = process CPU time of that phase per example (steadier
than wall time on a shared machine); "wall s" = loading + tokenising + training + evaluation (basefuse
also scores the validation split, which Trainer here does not).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYNTH_WORDS = [f"tok{i}" for i in range(2000)]


# ---------------------------------------------------------------- shared set-up (runs in each worker)

def synthetic_model(folder: Path) -> str:
    """A random BERT-small-sized encoder (4 layers, 512 wide) with a word-level vocabulary."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    if (folder / "config.json").exists():
        return str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *SYNTH_WORDS]) + "\n")
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048,
                     vocab_size=len(SYNTH_WORDS) + 5)
    BertModel(cfg).save_pretrained(folder)
    BertTokenizerFast(str(vocab)).save_pretrained(folder)
    return str(folder)


def synthetic_task(n_train: int):
    """4 classes; the class is set by which of 4 marker words occurs among 5-60 random words."""
    import random

    from datasets import Dataset

    from basefuse.data.task import Task

    def split(n: int, seed: int) -> Dataset:
        r = random.Random(seed)
        texts, labels = [], []
        for _ in range(n):
            y = r.randrange(4)
            words = [r.choice(SYNTH_WORDS[4:]) for _ in range(r.randrange(5, 60))]
            words.insert(r.randrange(len(words) + 1), SYNTH_WORDS[y])
            texts.append(" ".join(words))
            labels.append(y)
        return Dataset.from_dict({"text": texts, "label": labels})

    return Task("synthetic4", split(n_train, 1), split(200, 2), split(500, 3), ["a", "b", "c", "d"])


def setup(args: argparse.Namespace):
    """(model folder, task) identical for both workers."""
    if args.model == "synthetic":
        return synthetic_model(Path(args.workdir) / "synthetic-bert-small"), synthetic_task(args.max_train)
    from basefuse.data.api import load_task
    from basefuse.models import resolve_model

    return resolve_model(args.model), load_task(args.task, max_train=args.max_train)


def peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------- workers

def run_basefuse(args: argparse.Namespace) -> dict:
    from basefuse.finetuning.api import finetune
    from basefuse.finetuning.config import FinetuneConfig

    model, task = setup(args)
    # min_steps 0: exactly the Trainer's number of steps; no mid-run evaluations (the Trainer does none either)
    cfg = FinetuneConfig(learning_rate=args.lr, batch_size=args.batch_size, max_epochs=args.epochs, min_steps=0,
                         max_length=args.max_length, warmup_ratio=0.06, eval_every=10**9,
                         max_grad_norm=args.max_grad_norm or None, bf16=True)
    t0 = time.perf_counter()
    m = finetune(model, task, config=cfg, seed=args.seed, device=args.device, progress=False, threads=args.threads)
    wall = time.perf_counter() - t0
    return {"samples_per_s": m["train_samples_per_s"], "train_s": m["train_seconds"], "wall_s": wall,
            "cpu_ms_per_sample": 1000 * m["train_cpu_seconds"] / (m["steps"] and args.epochs * m["n"]["train"]),
            "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "steps": m["steps"], "n_train": m["n"]["train"],
            "device": m["device"], "threads": m["threads"], "peak_mb": peak_memory_mb(m["device"])}


def run_trainer(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)
    from transformers.utils import logging as hf_logging

    from basefuse.finetuning.config import FinetuneConfig
    from basefuse.finetuning.loop import schedule_lengths
    from basefuse.finetuning.metrics import accuracy, macro_f1

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model_path, task = setup(args)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.threads or os.cpu_count() or 1)  # as basefuse does
    t0 = time.perf_counter()
    set_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=task.num_labels)

    def tokenise(batch):
        return tok(batch["text"], truncation=True, max_length=args.max_length)

    train = task.train.map(tokenise, batched=True, remove_columns=["text"])
    test = task.test.map(tokenise, batched=True, remove_columns=["text"])
    _, total, warmup = schedule_lengths(len(train), FinetuneConfig(batch_size=args.batch_size,
                                                                   max_epochs=args.epochs, min_steps=0))
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=max(2 * args.batch_size, 64), num_train_epochs=args.epochs,
            learning_rate=args.lr, weight_decay=0.0, lr_scheduler_type="linear", warmup_steps=warmup,
            max_grad_norm=args.max_grad_norm,  # 0 turns clipping off in both loops
            eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
            seed=args.seed, data_seed=args.seed, train_sampling_strategy="group_by_length",
            bf16=device.startswith("cuda"), use_cpu=device == "cpu", dataloader_num_workers=0)
        trainer = Trainer(model=model, args=targs, train_dataset=train,
                          data_collator=DataCollatorWithPadding(tok), processing_class=tok)
        t_train, c_train = time.perf_counter(), time.process_time()
        trainer.train()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        train_s, train_cpu = time.perf_counter() - t_train, time.process_time() - c_train
        steps = trainer.state.global_step
        pred = trainer.predict(test)
    # Trainer (5.x) also length-groups the *eval* sampler under group_by_length, so predictions come
    # back shuffled: pair them with the label_ids returned alongside, never with the dataset's order.
    preds = np.asarray(pred.predictions).argmax(-1)
    labels = np.asarray(pred.label_ids)
    samples = args.epochs * len(train)
    return {"samples_per_s": samples / train_s, "train_s": train_s, "wall_s": time.perf_counter() - t0,
            "cpu_ms_per_sample": 1000 * train_cpu / samples,
            "accuracy": accuracy(preds, labels), "macro_f1": macro_f1(preds, labels), "steps": steps,
            "n_train": len(train), "device": device, "threads": torch.get_num_threads(),
            "peak_mb": peak_memory_mb(device), "expected_steps": total}


# ---------------------------------------------------------------- driver

def worker_cmd(args: argparse.Namespace, which: str) -> list[str]:
    cmd = [sys.executable, __file__, "--worker", which, "--model", args.model, "--task", args.task,
           "--max-train", str(args.max_train), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--max-length", str(args.max_length), "--lr", str(args.lr), "--seed", str(args.seed),
           "--max-grad-norm", str(args.max_grad_norm),
           "--workdir", args.workdir]
    return cmd + (["--device", args.device] if args.device else []) + (["--threads", str(args.threads)]
                                                                        if args.threads else [])


def table(results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    med = {k: {f: statistics.median(r[f] for r in runs) for f in ("samples_per_s", "train_s", "wall_s", "peak_mb",
                                                               "cpu_ms_per_sample")}
           for k, runs in results.items()}
    ratio = med["basefuse"]["samples_per_s"] / med["trainer"]["samples_per_s"]
    first = results["basefuse"][0]
    what = ("all-MiniLM-L6-v2 (minilm)" if args.model == "minilm" else
            "random BERT-small config (4 layers, 512 wide)" if args.model == "synthetic" else args.model)
    data = f"{args.task}" if args.model != "synthetic" else "synthetic 4-class marker-word text"
    clip = f"max-norm {args.max_grad_norm:g}" if args.max_grad_norm else "off"
    mem = "peak CUDA MiB" if first["device"].startswith("cuda") else "peak RSS MiB"
    lines = [
        f"model: {what}; task: {data}; train {first['n_train']} examples x {args.epochs:g} epochs, batch "
        f"{args.batch_size}, max length {args.max_length}, lr {args.lr:g}, gradient clipping "
        f"{clip}, seed {args.seed}; device "
        f"{first['device']}, {first['threads']} threads; median of {len(results['basefuse'])} interleaved runs",
        "",
        f"| loop | train samples/s | train s | CPU ms/sample | wall s | {mem} | test accuracy | test macro-F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, label in (("basefuse", "basefuse loop"), ("trainer", "transformers Trainer")):
        runs = results[k]
        accs = sorted({round(r["accuracy"], 4) for r in runs})
        f1s = sorted({round(r["macro_f1"], 4) for r in runs})
        lines.append(f"| {label} | {med[k]['samples_per_s']:.1f} | {med[k]['train_s']:.1f} "
                     f"| {med[k]['cpu_ms_per_sample']:.1f} | {med[k]['wall_s']:.1f} "
                     f"| {med[k]['peak_mb']:.0f} | {' / '.join(f'{a:.4f}' for a in accs)} "
                     f"| {' / '.join(f'{a:.4f}' for a in f1s)} |")
    lines += ["", f"ratio basefuse / Trainer (train samples/s): **{ratio:.2f}** (goal >= 1.2 on CPU)",
              "paired ratios (basefuse / the Trainer run beside it): " + ", ".join(
                  f"{b['samples_per_s'] / t['samples_per_s']:.2f}"
                  for b, t in zip(results["basefuse"], results["trainer"])),
              "", "per run (samples/s): " + "; ".join(
                  f"{k} " + ", ".join(f"{r['samples_per_s']:.1f}" for r in runs) for k, runs in results.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="minilm", help="minilm (default), a model folder, or 'synthetic'")
    p.add_argument("--task", default="trec_coarse")
    p.add_argument("--max-train", type=int, default=640)
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="clipping for both loops (0: off)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for both (default: all cores)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default=None)
    p.add_argument("--workdir", default=None)
    p.add_argument("--markdown", default=None, help="also write the table to this file")
    p.add_argument("--json", default=None, help="also write every run's numbers to this file")
    p.add_argument("--worker", choices=["basefuse", "trainer"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.epochs != int(args.epochs):
        p.error("--epochs must be whole here, so both loops see exactly the same examples")
    if args.worker:
        out = (run_basefuse if args.worker == "basefuse" else run_trainer)(args)
        print("RESULT " + json.dumps(out))
        return 0

    with tempfile.TemporaryDirectory() as work:
        args.workdir = args.workdir or work
        results: dict[str, list[dict]] = {"basefuse": [], "trainer": []}
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
        for rep in range(args.repeats):
            for which in ("basefuse", "trainer") if rep % 2 == 0 else ("trainer", "basefuse"):
                proc = subprocess.run(worker_cmd(args, which), capture_output=True, text=True, env=env)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                if proc.returncode or line is None:
                    print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                    return 1
                r = json.loads(line[len("RESULT "):])
                results[which].append(r)
                print(f"run {rep + 1} {which}: {r['samples_per_s']:.1f} samples/s, acc {r['accuracy']:.4f}, "
                      f"peak {r['peak_mb']:.0f} MiB, steps {r['steps']}", flush=True)
    text = table(results, args)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
