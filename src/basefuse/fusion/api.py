"""`fuse(...)`: the Python API behind `basefuse fuse`."""
from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from basefuse.checkpoints.align import align
from basefuse.checkpoints.hashing import Hasher
from basefuse.checkpoints.lora import LoraCheckpoint, is_adapter, load_adapter
from basefuse.checkpoints.ref import resolve_ref, split_revision
from basefuse.checkpoints.source import TOKENIZER_FILES, Checkpoint, load_checkpoint
from basefuse.errors import BasefuseError
from basefuse.fusion import engine
from basefuse.fusion.card import model_card
from basefuse.fusion.inspect import flag_unrelated
from basefuse.fusion.methods import (METHODS, check_params, check_sources, get_method, normalise_weights,
                                     with_defaults)
from basefuse.io import atomic_output_dir, write_json

DTYPE_NAMES = {"float32": "F32", "fp32": "F32", "float16": "F16", "fp16": "F16", "half": "F16",
               "bfloat16": "BF16", "bf16": "BF16", "float64": "F64"}
FLOAT_LABELS = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
HEAD_CONFIG_KEYS = ("id2label", "label2id", "num_labels", "problem_type", "finetuning_task")


def bare_architecture(config: dict[str, Any]) -> list[str] | None:
    """`BertForSequenceClassification` -> `BertModel`: the body class the output loads as."""
    archs = config.get("architectures") or []
    if not archs:
        return None
    name = archs[0]
    stem = name.split("For", 1)[0] if "For" in name else name.removesuffix("Model")
    return [stem if stem.endswith("Model") else f"{stem}Model"]


def weights_dtype(items: list[engine.Item]) -> str | None:
    """The dtype most of the output's floating-point parameters are stored in (`bfloat16`, ...), for config.json."""
    counts: dict[str, int] = {}
    for i in items:
        if i.dtype in FLOAT_LABELS:
            counts[i.dtype] = counts.get(i.dtype, 0) + int(np.prod(i.shape, dtype=np.int64))
    return FLOAT_LABELS[max(counts, key=counts.__getitem__)] if counts else None


def _output_config(sources: list[Checkpoint], base: Checkpoint | None, dtype: str | None,
                   lm_head: bool = False) -> dict[str, Any]:
    """The base's config (or the first source's, less its head), saying the dtype the weights are in: `dtype` is
    the key transformers 5 reads, `torch_dtype` the one earlier versions and the Hub's tools read."""
    if base is not None:
        cfg = dict(base.config)
    else:
        cfg = {k: v for k, v in sources[0].config.items() if k not in HEAD_CONFIG_KEYS}
        arch = None if lm_head else bare_architecture(sources[0].config)  # a fused LM head keeps the LM class
        if arch:
            cfg["architectures"] = arch
    if dtype is not None:
        cfg["dtype"] = cfg["torch_dtype"] = dtype
    return cfg


def _licence(sources: list[Checkpoint], base: Checkpoint | None) -> str | None:
    """The base's declared licence; without a base, the sources' when they all declare the same one."""
    from basefuse.hub.card import common_licence, declared_licence
    from basefuse.models import BUILTIN_MODELS

    def of(c: Checkpoint) -> str | None:
        builtin = BUILTIN_MODELS.get(c.name)
        return declared_licence(c.path, builtin.licence_id if builtin else None)

    return of(base) if base is not None else common_licence([of(c) for c in sources])


def _copy_first(cks: list[Checkpoint], names: tuple[str, ...], out: Path) -> list[str]:
    """Copy the files of `names` from the first checkpoint that has any of them (the base comes first)."""
    for ck in cks:
        present = [f for f in names if (ck.path / f).is_file()]
        if present:
            for f in present:
                shutil.copyfile(ck.path / f, out / f)
            return present
    return []


def fuse(sources: list[str | Path], out: str | Path, *, base: str | Path | None = None, method: str = "average",
         weights: list[float] | None = None, dtype: str | None = None, accumulate: str = "float32",
         device: str = "cpu", shard_size: int | None = None, force: bool = False, allow_unrelated: bool = False,
         flag_outliers: bool = True, progress: bool = True, hash_cache: bool = True, hasher: Hasher | None = None,
         repo_id: str | None = None, params: dict[str, Any] | None = None, tokenizer: str = "sources",
         data: dict[str, Any] | None = None, **method_params: Any) -> dict[str, Any]:
    """Fuse finetuned checkpoints into a base model folder at `out`; return the fusion.json manifest.

    Heads (tensors outside the shared body) are dropped and listed in the manifest. With `base`
    the output is the base model with its body replaced; without, the bare body model of the
    first source. Nothing is written unless the whole fusion succeeds. `hash_cache=False` re-hashes
    every input instead of trusting the (path, size, mtime, inode) cache of earlier runs. `hasher`: a
    Hasher already started on the inputs (the CLI starts one before the heavy imports); it replaces
    `hash_cache`, and fuse() closes it. `flag_outliers=False`: sources known to be finetunes of `base` (an
    experiment's own) are not refused for being far from the others' median (see `flag_unrelated`). The method's
    parameters come as `params` (e.g. `{"lambda": 0.5}`, names as `basefuse fuse --help` lists them) and/or as
    keyword arguments; old method and parameter names still work for one release, with a notice.
    A source or base may be `org/name@revision`; fusion.json records the commit each hub input resolved to.
    `repo_id`: the Hub repo the output will be pushed to (only named in the model card's usage example).
    `tokenizer="base"`: sources with added tokens are fused on the base's vocabulary (`checkpoints.align.align`).
    `data`: source (as given in `sources`) -> its task (a built-in task, a data file or folder, hf:NAME), read by
    the data-aware methods (fisher, regmean) to estimate each source's statistics, kept as sidecars and reused.
    """
    sources = [str(s) for s in sources]
    if len(sources) < 2:
        raise BasefuseError(f"got {len(sources)} source(s): fusion needs at least 2 finetuned checkpoints")
    m = get_method(method)
    overlap = sorted(set(params or {}) & set(method_params))
    if overlap:
        raise BasefuseError(f"parameter {overlap[0]!r} given twice (in params and as a keyword): give it once")
    given = check_params(m, {**(params or {}), **method_params})
    check_sources(m, len(sources))
    if m.needs_base and base is None:
        raise BasefuseError(f"method {m.name!r} works on task vectors and needs --base (the pretrained model)")
    if accumulate not in ("float32", "float64"):
        raise BasefuseError(f"--accumulate must be float32 or float64, got {accumulate!r}")
    out_dtype = None
    if dtype is not None:
        if dtype not in DTYPE_NAMES:
            raise BasefuseError(f"--dtype {dtype!r} unknown; use float32, float16 or bfloat16")
        out_dtype = DTYPE_NAMES[dtype]
    compute_device = _compute_device(device)
    if shard_size is not None and shard_size <= 0:
        raise BasefuseError(f"--shard-size must be positive, got {shard_size}")
    w = normalise_weights(m, weights, len(sources))
    tasks = source_tasks(m, sources, data)
    acc = np.float32 if accumulate == "float32" else np.float64

    cks: list[Checkpoint] = []
    bck: Checkpoint | None = None
    side: dict[str, list[Checkpoint]] = {}
    hasher = hasher or Hasher(use_cache=hash_cache)  # the CLI passes one already hashing
    ok = False
    try:
        bck = load_checkpoint(base) if base is not None else None
        for s in sources:
            cks.append(load_source(s, bck, base))
        _refuse_same_folder(cks)
        al = align(cks, bck, tokenizer=tokenizer)
        if not [k for k in al.body if k not in al.copied]:
            raise BasefuseError("the sources share no floating-point body tensors: nothing to fuse")
        side = _side_inputs(m, cks, tasks, bck, with_defaults(m, given))
        everyone = [*cks, *([bck] if bck is not None else [])]
        for c in everyone:
            for f in c.files:  # a cold weight file is hashed by the read-ahead the engine's reads drive
                hasher.submit(f, stream=True)
            c.watch_reads(hasher.watch)
        protected = [c.path for c in everyone]
        with atomic_output_dir(out, force=force, protected=protected) as tmp:
            items = engine.plan(cks, bck, al, out_dtype)
            total = sum(int(np.prod(i.shape, dtype=np.int64)) for i in items)
            job = engine.FusionJob(sources=cks, base=bck, alignment=al, items=items, method=m, weights=w,
                                   params=with_defaults(m, given), out_dir=tmp, acc=acc, shard_size=shard_size,
                                   device=compute_device, side=side)
            files, stats = _run_with_progress(job, total, progress)
            dist = [float(v) for v in np.sqrt(stats.sq_dist)]
            ref_norm = float(np.sqrt(stats.ref_sq))
            flags = flag_unrelated([c.name for c in cks], dist, ref_norm, outliers=flag_outliers)
            if flags and not allow_unrelated:
                f = flags[0]
                raise BasefuseError(f"source {f['source']}: {f['reason']}; check the sources (basefuse inspect) "
                                    "or pass --allow-unrelated")
            _refuse_same_content(cks, hasher)
            out_dtype_name = weights_dtype(items)
            write_json(tmp / "config.json", _output_config(cks, bck, out_dtype_name, lm_head=bool(al.lm_heads)))
            donors = [bck, *cks] if bck is not None else cks
            tok = _copy_first(donors, TOKENIZER_FILES, tmp)
            tok += _copy_first(donors, ("generation_config.json",), tmp)  # a decoder's sampling defaults

            def entry(c: Checkpoint, i: int | None) -> dict[str, Any]:
                e = {"name": c.name, "path": str(c.path.resolve()), "model_type": c.model_type,
                     "hub_id": c.hub_id, "revision": split_revision(c.name)[1], "commit": c.commit,
                     "sha256": {f.name: hasher.digest(f) for f in c.files},
                     # these digests are the Hub cache's blob names (the LFS sha256 the Hub sent), not re-computed
                     "sha256_from_hub_cache": [f.name for f in c.files if hasher.is_from_hub(f)]}
                if isinstance(c, LoraCheckpoint):
                    e |= {"lora_adapter": {"tensors_changed": len(c.deltas), "tensors_replaced": len(c.replaced),
                                           "left_out": c.left_out, "base_check": c.base_check}}
                if i is not None and tasks is not None:
                    e["data"] = tasks[c.name]  # the task its statistics were estimated on
                if i is not None:
                    e |= {"weight": float(w[i]), "distance": dist[i],
                          "relative_distance": dist[i] / ref_norm if ref_norm else None,
                          "head_keys": [d.key for d in al.dropped if d.source == c.name and d.reason == "head"]}
                return e

            from basefuse import __version__

            manifest = {
                "basefuse_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "method": m.name, "params": job.params, "params_given": given, "weights": [float(v) for v in w],
                "accumulate": accumulate, "dtype": dtype, "output_dtype": out_dtype_name, "device": device,
                "shard_size": shard_size, "license": _licence(cks, bck),
                "side_inputs": {k: [str(c.files[0]) for c in v] for k, v in side.items()},
                "sources": [entry(c, i) for i, c in enumerate(cks)],
                "base": entry(bck, None) if bck is not None else None,
                "distance_reference": "base" if bck is not None else "mean of sources",
                "fused_tensors": sum(1 for i in items if i.canonical is not None),
                "fused_parameters": stats.fused_params,
                "copied_parameters": stats.copied_params,
                "dropped_keys": [d.as_dict() for d in al.dropped],
                "lm_head_keys": list(al.lm_heads),
                "tokenizer": tokenizer,
                "vocab_rows": {k: {"rows_fused": v, "rows": al.shapes[k][0]} for k, v in al.vocab_rows.items()},
                "flagged": flags, "allow_unrelated": allow_unrelated,
                "files": sorted([*files, "config.json", *tok, "README.md", "fusion.json"]),
            }
            (tmp / "README.md").write_text(model_card(manifest, out_name=Path(out).name, repo_id=repo_id),
                                           encoding="utf-8")
            write_json(tmp / "fusion.json", manifest)
        ok = True
        return json.loads(json.dumps(manifest, default=str))
    finally:
        hasher.close(save=ok)
        for c in [*cks, *([bck] if bck is not None else []), *(c for v in side.values() for c in v)]:
            c.close()


def source_tasks(m: Any, sources: list[str], data: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each source's task for a data-aware method, checked: every source has one, and nothing else is given.

    A task is a spec (built-in name, data file or folder, hf:NAME) or a dict of `load_task`'s arguments (`spec`,
    `text_col`, `label_col`, `pair_col`: how an experiment names a source's task)."""
    data = {str(k): dict(v) if isinstance(v, dict) else str(v) for k, v in (data or {}).items()}
    if not m.side_inputs:
        if data:
            users = ", ".join(x.name for x in METHODS.values() if x.side_inputs)
            raise BasefuseError(f"method {m.name!r} reads no data: drop --data (it is read by {users})")
        return None
    unknown = [k for k in data if k not in sources]
    if unknown:
        raise BasefuseError(f"--data {unknown[0]}=...: not one of the sources ({', '.join(sources)}); name each "
                            "source exactly as given")
    missing = [s for s in sources if s not in data]
    if missing:
        raise BasefuseError(f"method {m.name!r} needs each source's task data: give --data {missing[0]}=TASK (a "
                            "built-in task, a data file or hf:NAME) for every source")
    return {s: data[s] for s in sources}


def _side_inputs(m: Any, cks: list[Checkpoint], tasks: dict[str, Any] | None, bck: Checkpoint | None,
                 params: dict[str, Any]) -> dict[str, list[Checkpoint]]:
    """The method's per-source statistics as sidecar checkpoints (computed once per source and data, then reused)."""
    if not m.side_inputs or tasks is None:
        return {}
    from basefuse.fusion.sidecars import StatsRequest, open_sidecar, statistics

    out: dict[str, list[Checkpoint]] = {}
    for kind in m.side_inputs:
        opened: list[Checkpoint] = []
        out[kind] = opened
        for c in cks:
            if isinstance(c, LoraCheckpoint):
                raise BasefuseError(f"{c.name}: a LoRA adapter; method {m.name!r} estimates statistics with a whole "
                                    "model: merge the adapter first (PEFT's merge_and_unload)")
            path = statistics(StatsRequest(kind, c, tasks[c.name], int(params["n"]),
                                           bck.path if bck is not None else None))
            opened.append(open_sidecar(path, f"{kind} of {c.name}"))
    return out


def load_source(ref: str, base: Checkpoint | None, base_ref: str | Path | None) -> Checkpoint:
    """A source checkpoint: a model folder (or hub id), or a LoRA adapter merged into `base` on the fly."""
    model = resolve_ref(ref)
    if is_adapter(model.folder) and not (model.folder / "config.json").is_file():
        adapter = load_adapter(ref, model.folder, base, str(base_ref) if base_ref is not None else None)
        adapter.hub_id, adapter.commit = model.hub_id, model.commit
        return adapter
    return load_checkpoint(ref)


def _refuse_same_folder(cks: list[Checkpoint]) -> None:
    """`ft0 ./ft0/` would silently give one model twice the weight: `--method linear --weights` says so explicitly."""
    seen: dict[Path, str] = {}
    for c in cks:
        key = c.path.resolve()
        if key in seen:
            raise BasefuseError(f"sources {seen[key]} and {c.name} are the same folder ({key}): give each model "
                                "once (to weigh one more, use --method linear --weights)")
        seen[key] = c.name


def _refuse_same_content(cks: list[Checkpoint], hasher: Hasher) -> None:
    """Two copies of one model under two paths: same sha256 of every weight file.

    Checked once the digests are in (they are computed while the fusion runs), before anything is renamed
    into place, so the check costs no time on the fusion path.
    """
    seen: dict[tuple[str, ...], str] = {}
    for c in cks:
        key = tuple(hasher.digest(f) for f in c.files if f.name != "config.json")
        if key in seen:
            raise BasefuseError(f"sources {seen[key]} and {c.name} hold identical weights (same sha256): give "
                                "each model once (to weigh one more, use --method linear --weights)")
        seen[key] = c.name


def _compute_device(device: str) -> str | None:
    """'cpu' computes in numpy (None); 'cuda' / 'cuda:N' in torch on that GPU, which must exist."""
    if device == "cpu":
        return None
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise BasefuseError(f"--device {device!r} unknown; use cpu, cuda or cuda:N")
    try:
        import torch
    except ImportError:
        raise BasefuseError(f"--device {device}: torch is not installed; install torch or use --device cpu") from None
    if not torch.cuda.is_available():
        raise BasefuseError(f"--device {device}: no CUDA GPU is visible (torch.cuda.is_available() is False); "
                            "use --device cpu")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise BasefuseError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible; "
                            "pick one of cuda:0..cuda:" + str(torch.cuda.device_count() - 1))
    return f"cuda:{index}"


def _run_with_progress(job: engine.FusionJob, total: int, progress: bool) -> tuple[list[str], engine.Stats]:
    if not progress:
        return engine.run(job)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("fusing"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeRemainingColumn(), transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("fuse", total=total)
        return engine.run(job, on_progress=lambda k: bar.advance(task, k))
