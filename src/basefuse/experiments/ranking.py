"""Which base to start from? Rank candidate bases (every pool member, the pretrained model, the fusion of all) by a
cheap linear probe on probe tasks, finetune the top k with seeds, and optionally choose a fused set greedily.

An experiment underneath, not a second engine: a generated config (the pool as a family, the probe tasks as
held-out tasks), planned by the same functions, run as ordinary jobs in a run directory (keyed, stored, resumed,
on any executor). The statistics and the table are the report layer's (`basefuse.reports.ranking`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from basefuse.errors import BasefuseError
from basefuse.experiments.config import (CheckpointRef, ExperimentConfig, SelectionSettings, TaskRef,
                                         parse_experiment_config)
from basefuse.experiments.protocol import Plan, add_sources, base_from, probe_job, target_finetune_job
from basefuse.experiments.records import PRETRAINED

RANKING_FILE = "ranking.json"
FUSED_ALL = "fused (all)"
POOL_FAMILY = "pool"
PROBE_FAMILY = "probe"


@dataclass(frozen=True)
class RankRequest:
    """What to rank, on what, how hard."""

    base_model: str
    pool: list[CheckpointRef]
    probe: list[TaskRef]
    probe_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    top_k: int = 3
    finetune_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    select: bool = False
    max_train: int | None = 300
    finetune: dict[str, Any] = field(default_factory=dict)  # FinetuneConfig fields
    probe_settings: dict[str, Any] = field(default_factory=dict)  # ProbeConfig fields

    def config(self) -> ExperimentConfig:
        """The experiment this ranking is: the pool as a family, the probe tasks as its held-out targets."""
        names = [c.name for c in self.pool]
        clash = sorted(set(names) & {PRETRAINED, FUSED_ALL, *(t.name for t in self.probe)})
        if clash:
            raise BasefuseError(f"pool member name {clash[0]!r} is taken (a candidate or a probe task): rename it")
        if len(self.pool) < 2:
            raise BasefuseError("rank needs at least 2 pool members (the fusion of all is one of the candidates)")
        data = {"name": "rank", "base_model": self.base_model,
                "families": {POOL_FAMILY: [c.model_dump(mode="json") for c in self.pool]},
                "held_out": {PROBE_FAMILY: [t.model_dump(mode="json", exclude_defaults=True) | {"name": t.name}
                                            for t in self.probe]},
                "targets": [t.name for t in self.probe], "seeds": list(self.finetune_seeds),
                "budgets": {"max_train_target": self.max_train}, "finetune": self.finetune,
                "probe": self.probe_settings, "conditions": ["pretrained", "fused"], "fused_groups": ["all"],
                "leakage": {"allow_unknown": True}}
        return parse_experiment_config(data, "basefuse rank")


def candidates(cfg: ExperimentConfig) -> list[str]:
    return [PRETRAINED, FUSED_ALL, *cfg.source_names()]


def _models(plan: Plan, cfg: ExperimentConfig, base: dict[str, str]) -> dict[str, tuple[dict[str, str], tuple]]:
    method = cfg.fusions()[0]
    out: dict[str, tuple[dict[str, str], tuple]] = {PRETRAINED: (base, ()),
                                                    FUSED_ALL: base_from(plan, cfg.source_names(), method, base)}
    for name in cfg.source_names():
        out[name] = base_from(plan, [name], method, base)
    return out


RunRound = Callable[[Plan], None]


def run_ranking(req: RankRequest, cfg: ExperimentConfig, inputs: Any, run_round: RunRound,
                read: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Probe every candidate on every probe task and seed; finetune the top k; greedy selection if asked.
    Returns the JSON-ready record of every score (per candidate, task and seed), for the report layer."""
    facts, base = inputs.facts, inputs.base_ref
    tasks = [t.name for t in req.probe]
    plan = Plan()
    add_sources(plan, cfg, facts, base, inputs.checkpoints)
    models = _models(plan, cfg, base)
    probes: dict[str, dict[str, dict[int, str]]] = {}
    for cand, (model, deps) in models.items():
        probes[cand] = {t: {s: probe_job(plan, cfg, facts, model, deps, t, s,
                                         f"probe {cand} on {t} (seed {s})").key for s in req.probe_seeds}
                        for t in tasks}
    plan.prune([k for c in probes.values() for t in c.values() for k in t.values()])
    run_round(plan)
    probe_scores = {c: {t: {s: read(k) for s, k in by_seed.items()} for t, by_seed in by_task.items()}
                    for c, by_task in probes.items()}
    mean = {c: _mean([v["accuracy"] for t in by_task.values() for v in t.values()])
            for c, by_task in probe_scores.items()}
    order = sorted(mean, key=lambda c: (-mean[c], c))
    top = order[:req.top_k]
    finetunes: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    if top and req.finetune_seeds:
        plan2 = Plan()
        add_sources(plan2, cfg, facts, base, inputs.checkpoints)
        models = _models(plan2, cfg, base)
        keys = {c: {t: {s: target_finetune_job(plan2, cfg, facts, models[c][0], models[c][1], t, s, 0.0,
                                                 f"finetune {c} on {t} (seed {s})").key
                        for s in req.finetune_seeds} for t in tasks} for c in top}
        plan2.prune([k for c in keys.values() for t in c.values() for k in t.values()])
        run_round(plan2)
        finetunes = {c: {t: {s: read(k) for s, k in by_seed.items()} for t, by_seed in by_task.items()}
                     for c, by_task in keys.items()}
    record: dict[str, Any] = {
        "base_model": req.base_model, "probe_tasks": tasks, "probe_seeds": list(req.probe_seeds),
        "finetune_seeds": list(req.finetune_seeds), "top_k": req.top_k, "max_train": req.max_train,
        "metric": "accuracy", "candidates": candidates(cfg), "order": order, "finetuned": top,
        "pool": [{"name": c.name, "model": c.model, "path": inputs.checkpoints[c.name].path,
                  "fingerprint": inputs.checkpoints[c.name].fingerprint,
                  "trained_on": c.trained_on if isinstance(c.trained_on, str)
                  else [t.name for t in c.trained_on]} for c in req.pool],
        "probe": _strip(probe_scores), "finetune": _strip(finetunes),
        "rule": "candidates ordered by mean linear-probe accuracy over the probe tasks and seeds (ties: by name); "
                "the first top_k finetuned on every probe task with every finetune seed"}
    on_probe = trained_on_probe(cfg, facts, tasks)
    record["trained_on_probe"] = on_probe
    if req.select:
        from basefuse.experiments.selection import select

        # as in an experiment's selection: a member declared trained on a probe task is no candidate
        members = tuple(sorted(s for s in cfg.source_names() if s not in on_probe))
        if not members:
            raise BasefuseError("--select greedy: every pool member was trained on a probe task; nothing to select")
        _, sel = select(cfg, facts, base, inputs.checkpoints, run_round, lambda k: read(k)["accuracy"],
                        settings=SelectionSettings(probe=tasks, seeds=list(req.probe_seeds)),
                        targets={"(rank)": members})
        record["selection"] = sel
    return record


def trained_on_probe(cfg: ExperimentConfig, facts: dict, tasks: list[str]) -> list[str]:
    """Members declared trained on a probe task, by name or by content (a renamed or shuffled copy of its rows)."""
    from basefuse.experiments.leakage import content_fingerprints

    probe_fps = set()
    for t in tasks:
        if facts.get(t) is not None and facts[t].content is not None:
            probe_fps |= set(content_fingerprints(facts[t].content))
    out = []
    for member in cfg.source_names():
        for t in cfg.trained_on(member) or ():
            content = facts[t].content if facts.get(t) is not None else None
            if t in tasks or (content is not None and probe_fps & set(content_fingerprints(content))):
                out.append(member)
                break
    return out


def _strip(scores: dict) -> dict:
    """The numbers a ranking keeps of each job: accuracy and macro-F1."""
    return {c: {t: {str(s): {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"]} for s, r in by_seed.items()}
                for t, by_seed in by_task.items()} for c, by_task in scores.items()}


def _mean(xs: list[float]) -> float:
    if not xs:
        raise BasefuseError("a candidate has no probe score: nothing to rank")
    return sum(xs) / len(xs)


def rank_pool(req: RankRequest, run_dir: str | Path, executor: Any = None, *, device: str | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Plan and run a ranking in `run_dir` (resumable: finished jobs are reused); writes RUN/ranking.json."""
    import contextlib

    from basefuse.executors import LocalExecutor
    from basefuse.experiments.failures import raise_if_failed
    from basefuse.experiments.runner import plan_inputs, run_jobs
    from basefuse.experiments.store import JobStore
    from basefuse.io import write_json

    cfg = req.config()
    run_dir = Path(run_dir).resolve()
    inputs = plan_inputs(cfg)  # resolves the pool and refuses a checkpoint of another model before any job

    with contextlib.ExitStack() as stack:
        ex = executor or stack.enter_context(LocalExecutor())

        def run_round(plan: Plan) -> None:
            outcome = run_jobs(plan, run_dir, ex, device=device, progress=progress, results_file=False)
            raise_if_failed(outcome.failures, "rank", run_dir)

        def read(key: str) -> dict[str, Any]:
            return JobStore(run_dir / "store.jsonl").get(key)

        record = run_ranking(req, cfg, inputs, run_round, read)
    write_json(run_dir / RANKING_FILE, record)
    return record
