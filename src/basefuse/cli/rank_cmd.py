"""`basefuse rank`: which of a pool of finetunes (or their fusion, or the pretrained model) is the best base?"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from basefuse.cli import output

from basefuse.cli.executor_options import Device, ExecutorName, GpusPerJob, RayAddress, Threads, Workers
from basefuse.errors import BasefuseError


def _seeds(text: str, option: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise BasefuseError(f"{option} {text!r}: give whole numbers separated by commas, e.g. 0,1,2") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise BasefuseError(f"{option} {text!r}: seeds are distinct whole numbers >= 0")
    return seeds


def member_name(spec: str) -> tuple[str, str]:
    """`NAME=MODEL`, or a model whose name is its folder's (the parent's, for a `.../NAME/model` folder that
    `basefuse finetune --save` wrote) or the hub id's last part."""
    if "=" in spec:
        name, _, model = spec.partition("=")
        return name, model
    p = Path(spec.rstrip("/"))
    name = p.parent.name if p.name == "model" and p.parent.name else p.name
    return name.split("@")[0], spec


def parse_pool(specs: list[str], trained_on: list[str], probes: dict[str, str] | None = None) -> list:
    """The pool members; `probes` maps a probe task's spec as given to its name, so `--trained-on NAME=SPEC` of a
    probe task names that very task (and selection leaves the member out)."""
    from basefuse.experiments.config import CheckpointRef

    declared: dict[str, list[str]] = {}
    for d in trained_on:
        name, sep, tasks = d.partition("=")
        if not sep or not tasks:
            raise BasefuseError(f"--trained-on {d!r}: write NAME=TASK[,TASK...] (NAME: a pool member)")
        declared[name] = [(probes or {}).get(t, t) for t in tasks.split(",") if t]
    pool, seen = [], set()
    for spec in specs:
        name, model = member_name(spec)
        if name in seen:
            raise BasefuseError(f"two pool members are named {name!r}: name them, e.g. {name}2={model}")
        seen.add(name)
        try:
            pool.append(CheckpointRef(name=name, model=model, trained_on=declared.pop(name, "unknown")))
        except ValueError as e:
            raise BasefuseError(f"pool member {spec!r}: {str(e).splitlines()[-1].strip()}") from None
    if declared:
        raise BasefuseError(f"--trained-on names {next(iter(declared))!r}, which is no pool member; members: "
                            f"{', '.join(sorted(seen))}")
    return pool


def register(app: typer.Typer) -> None:
    @app.command("rank")
    def rank_cmd(
        pool: list[str] = typer.Argument(..., help="Pool members: model folders or hub ids (id@revision), each "
                                                   "optionally NAME=MODEL."),
        base: str = typer.Option(..., "--base", "-b", help="The pretrained model they were all finetuned from "
                                                           "(built-in name, folder or hub id)."),
        probe: list[str] = typer.Option(..., "--probe", "-p", help="Probe task (built-in name, data file or "
                                                                   "hf:NAME); repeat for several."),
        trained_on: list[str] = typer.Option([], "--trained-on", help="NAME=TASK[,TASK...]: what a member was "
                                             "finetuned on (default: unknown, and said so)."),
        probe_seeds: str = typer.Option("0,1,2", "--probe-seeds", help="Linear-probe seeds (each draws the probe's "
                                                                       "training examples)."),
        top_k: int = typer.Option(3, "--top-k", min=0, help="Finetune the best K candidates (0: probe only)."),
        finetune_seeds: str = typer.Option("0,1,2", "--finetune-seeds", help="Seeds of the top-k finetunes."),
        select: Optional[str] = typer.Option(None, "--select", help="greedy: also choose a fused set (greedy soup "
                                             "on the probe tasks)."),
        max_train: int = typer.Option(300, "--max-train", min=2, help="Train examples per probe task."),
        out: Path = typer.Option(Path("runs/rank"), "--out", "-o", help="Run directory (resumable); writes "
                                 "ranking.json, ranking.md and ranking.png there."),
        executor: ExecutorName = "local",
        workers: Workers = 1,
        threads: Threads = None,
        device: Device = None,
        ray_address: RayAddress = None,
        gpus_per_job: GpusPerJob = 0.0,
    ) -> None:
        """Rank candidate bases by a linear probe on probe tasks, finetune the top k; optionally select a fused set.

        Candidates: every pool member, the pretrained model and the fusion of all members. A killed run started
        again redoes no finished job.
        """
        from basefuse.executors import make_executor
        from basefuse.experiments.config import TaskRef
        from basefuse.experiments.ranking import RankRequest, rank_pool
        from basefuse.io import write_text_atomic
        from basefuse.reports import ranking

        if select not in (None, "greedy"):
            raise BasefuseError(f"--select {select!r}: the one strategy is greedy")
        probes = {p: Path(p).stem if Path(p).exists() else p.replace("/", "_") for p in probe}
        req = RankRequest(base_model=base, pool=parse_pool(pool, trained_on, probes),
                          probe=[TaskRef(name=name, spec=p) for p, name in probes.items()],
                          probe_seeds=_seeds(probe_seeds, "--probe-seeds"), top_k=top_k,
                          finetune_seeds=_seeds(finetune_seeds, "--finetune-seeds") if top_k else [],
                          select=select == "greedy", max_train=max_train)
        with make_executor(executor, workers, threads=threads, address=ray_address,
                           gpus_per_job=gpus_per_job) as ex:
            record = rank_pool(req, out, ex, device=device, progress=output.progress())
        md = ranking.markdown(record)
        write_text_atomic(out / "ranking.md", md)
        ranking.figure(record, out / "ranking.png")
        if output.result(record):
            return
        if output.human():
            typer.echo(md)
            typer.echo(f"ranking: {out / 'ranking.json'}, {out / 'ranking.md'}, {out / 'ranking.png'}")
