"""The seed paper's comparison as a graph of jobs: pure, so it can be tested without running any.

The jobs: finetune the base once on every source task and save it; fuse, per target, the source
models of each family and of all families, always leaving out the target's own task; finetune every
base condition on every target for every seed and weight decay. With `cold_fusion`, ColD Fusion
chains (per setting, pool and chain seed), each with one-shot fusion over its own pool. Each job names
the jobs it needs (`deps`); a job runs as soon as they are done, and jobs no report row needs are pruned.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from basefuse.errors import BasefuseError
from basefuse.experiments.config import CheckpointRef, ExperimentConfig, FusionSettings, TaskRef
from basefuse.experiments.jobs import Job, make_job
from basefuse.experiments.locate import LOCATION_KEYS
from basefuse.experiments.records import GREEDY, LINEAR_PROBE, OTHER_FAMILIES, SEEN, base_label
from basefuse.experiments.leakage import (BaseModelFacts, LeakageError, TargetRun, TaskContent,
                                          check_base_model, check_distinct_content, check_overlap, check_provenance,
                                          content_fingerprints, exact_hits, near_hits_of, overlap_table,
                                          unknown_base, unknown_checkpoints)


@dataclass(frozen=True)
class TaskFacts:
    """What planning needs to know of a loaded task."""

    train_size: int  # before any budget: "largest source" is about the dataset, not the budget
    fingerprint_source: str  # fingerprint with the source budget applied
    fingerprint_target: str  # fingerprint with the target budget applied
    content: TaskContent | None = None  # rows and texts for the leakage check (None: checked by name only)
    fingerprint_full: str | None = None  # the whole train split's (a probe's seed draws its examples from it)


@dataclass(frozen=True)
class CheckpointFacts:
    """A pool checkpoint as planning sees it: where its model is, and the sha256 of its weights; `origin`: the hub id
    and commit another node fetches it by (`locate.origin_of`; empty for a local folder)."""

    path: str
    fingerprint: str
    origin: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedRun:
    """One target finetune and the report row it will become."""

    job_key: str
    target: str
    target_family: str
    condition: str
    source_family: str | None
    sources: tuple[str, ...]
    seed: int
    weight_decay: float
    ablation: str = "main"
    n_fused: int | None = None
    method: str | None = None  # the fusion method of a fused or ColD base
    iteration: int | None = None  # the ColD Fusion iteration whose shared model is the base
    order: int | None = None  # the number-of-models ablation: which random order of the pool
    chain_seed: int | None = None  # the ColD chain seed of a ColD row, or of the one-shot fusion over its pool
    provenance: str | None = None  # "unknown": the base holds a pool checkpoint of unknown provenance
    evaluation: str | None = None  # "linear_probe" for a probe's row; None: finetuned (every row before probes)

    def record_fields(self) -> dict[str, Any]:
        extra = {k: v for k, v in (("method", self.method), ("iteration", self.iteration), ("order", self.order),
                                   ("chain_seed", self.chain_seed), ("provenance", self.provenance),
                                   ("evaluation", self.evaluation))
                 if v is not None}
        return {"target": self.target, "target_family": self.target_family, "condition": self.condition,
                "source_family": self.source_family, "sources": list(self.sources), "n_fused": self.n_fused,
                "seed": self.seed, "weight_decay": self.weight_decay, "ablation": self.ablation,
                "job_key": self.job_key} | extra


@dataclass
class Plan:
    jobs: dict[str, Job] = field(default_factory=dict)  # by key; every job after the jobs it needs
    sources: dict[str, str] = field(default_factory=dict)  # source name -> key of its finetune (or checkpoint) job
    runs: list[PlannedRun] = field(default_factory=list)
    provenance: dict[str, frozenset[str]] = field(default_factory=dict)  # by key: tasks trained into its output
    leakage: dict[str, Any] = field(default_factory=dict)  # the overlap table, written to RUN/leakage.json
    selection_pending: bool = False  # the config selects a fused set, not chosen yet: its conditions are not here
    checkpoint_data: dict[str, dict[str, Any]] = field(default_factory=dict)  # pool checkpoint -> the one task it
    # was trained on (its data-aware fusion statistics are estimated there); absent: no single known task

    def add(self, job: Job) -> Job:
        """Add a job once (the same key is the same work, whoever asks for it)."""
        missing = [d for d in job.deps if d not in self.jobs]
        if missing:
            raise ValueError(f"job {job.label!r} needs jobs not in the plan yet: {missing}")
        return self.jobs.setdefault(job.key, job)

    # ---- views (derived from `jobs`, `sources` and `runs`) ----
    def source_jobs(self) -> dict[str, Job]:
        """Source name -> its finetune from the base, or its checkpoint job."""
        return {n: self.jobs[k] for n, k in self.sources.items()}

    def model_ref(self, key: str) -> dict[str, str]:
        """How a job names the model another job made or stands for (a checkpoint: its folder and weights'
        fingerprint, so the job reads it where it is and its key holds the weights, not the path)."""
        job = self.jobs[key]
        ref = {"job": key, "kind": job.kind}
        if job.kind == "checkpoint":
            ref |= {k: job.params[k] for k in LOCATION_KEYS if k in job.params} \
                | {"fingerprint": job.params["fingerprint"]}
        return ref

    def fuse_jobs(self) -> dict[str, Job]:
        return {k: j for k, j in self.jobs.items() if j.kind == "fuse"}

    def target_keys(self) -> list[str]:
        """The jobs that are report rows, each once, in plan order."""
        return list(dict.fromkeys(r.job_key for r in self.runs))

    def target_jobs(self) -> dict[str, Job]:
        return {k: self.jobs[k] for k in self.target_keys()}

    def prune(self, keep: list[str] | None = None) -> None:
        """Drop every job no report row (or no job of `keep`) needs, directly or through other jobs (e.g. a source
        nothing fuses)."""
        needed: set[str] = set()
        stack = self.target_keys() + list(keep or [])
        while stack:
            key = stack.pop()
            if key not in needed:
                needed.add(key)
                stack.extend(self.jobs[key].deps)
        self.jobs = {k: j for k, j in self.jobs.items() if k in needed}
        self.sources = {n: k for n, k in self.sources.items() if k in needed}


def source_finetune(plan: Plan, cfg: ExperimentConfig, facts: dict[str, TaskFacts], base: dict[str, str], name: str,
                    start: dict[str, str] | None, label: str, seed: int | None = None) -> str:
    """A saved finetune on source task `name` from the base (start None) or from a job's model, with
    `source_seed` unless another seed is given (a ColD chain seed's contributors)."""
    params = {"model": start or base, "task": _task_params(cfg.task_refs()[name], cfg.family_of(name))
              | {"fingerprint": facts[name].fingerprint_source},
              "max_train": cfg.budgets.max_train_source, "hparams": cfg.source_hparams.model_dump(mode="json"),
              "seed": cfg.source_seed if seed is None else seed, "save": True}
    return plan.add(make_job("finetune", label, params, (start["job"],) if start else ())).key


def add_sources(plan: Plan, cfg: ExperimentConfig, facts: dict[str, TaskFacts], base: dict[str, str],
                checkpoints: dict[str, CheckpointFacts] | None) -> None:
    """One job per source: a saved finetune from the base per source task, a checkpoint job per pool member
    (pruned later if nothing uses it)."""
    pool = cfg.checkpoints()
    missing = sorted(set(pool) - set(checkpoints or {}))
    if missing:
        raise BasefuseError(f"checkpoint {missing[0]!r} was not resolved before planning (pass `checkpoints`)")
    for name in cfg.source_names():
        if name in pool:
            plan.sources[name] = _checkpoint_job(plan, pool[name], (checkpoints or {})[name], facts)
            task = _checkpoint_task(cfg, pool[name])
            if task is not None:
                plan.checkpoint_data[name] = task
        else:
            plan.sources[name] = source_finetune(plan, cfg, facts, base, name, None, f"source {name}")


def fuse_job(plan: Plan, parts: list[tuple[str, str]], method: FusionSettings, start: dict[str, str],
             label: str = "") -> dict[str, str]:
    """A fusion of source models (name, key), relative to the model `start` they began from (the base, or a
    ColD iteration's shared model)."""
    parts = sorted(parts)
    params = {"sources": [plan.model_ref(k) for _, k in parts], "base": start,
              "method": method.method, "method_params": dict(method.params)}
    if method.allow_unrelated:  # only when set: the keys of every other fusion stay as they were
        params["allow_unrelated"] = True
    if _reads_data(method.method):  # fisher, regmean: each source's statistics on the task it was finetuned on
        params["data"] = [_source_task(plan, n, k) for n, k in parts]
    deps = tuple(k for _, k in parts) + ((start["job"],) if "job" in start else ())
    label = label or f"fuse {'+'.join(n for n, _ in parts)}"
    if method.method != "average":
        label += f" [{method.name or method.method}]"
    job = plan.add(make_job("fuse", label, params, deps))
    return {"job": job.key, "kind": "fuse"}


def _reads_data(method: str) -> bool:
    from basefuse.fusion.methods import get_method

    return bool(get_method(method).side_inputs)


def _source_task(plan: Plan, name: str, key: str) -> dict[str, Any]:
    """The task a source model trained on (a data-aware fusion estimates the source's statistics on it): a source
    finetune's own task, or the one task a pool checkpoint declares in `trained_on`."""
    job = plan.jobs[key]
    task = job.params.get("task") if job.kind == "finetune" else plan.checkpoint_data.get(name)
    if not isinstance(task, dict):
        raise BasefuseError(f"source {name}: a pool checkpoint without exactly one task in `trained_on`, so the "
                            "experiment does not know its data; the data-aware fusion methods (fisher, regmean) need "
                            "each checkpoint's one training task: declare it, or use a data-free method")
    return {k: task[k] for k in ("spec", "text_col", "label_col", "pair_col")}


def _checkpoint_task(cfg: ExperimentConfig, ref: CheckpointRef) -> dict[str, Any] | None:
    """The one task a pool checkpoint declares it was trained on, as a finetune's task entry (the config's own
    entry where the name is one of its tasks, for its columns); None for unknown or several tasks."""
    if not ref.known or len(ref.trained_on) != 1:
        return None
    task = ref.trained_on[0]
    return _task_params(cfg.task_refs().get(task.name, task), None)


def base_from(plan: Plan, sources: list[str] | tuple[str, ...], method: FusionSettings,
              base: dict[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """A base built from source models: the model itself for one, a fusion (relative to the base) for several."""
    if len(sources) == 1:
        key = plan.sources[sources[0]]
        return plan.model_ref(key), (key,)
    model = fuse_job(plan, [(s, plan.sources[s]) for s in sources], method, base)
    return model, (model["job"],)


def target_finetune_job(plan: Plan, cfg: ExperimentConfig, facts: dict[str, TaskFacts], model: dict[str, str],
                        deps: tuple[str, ...], target: str, seed: int, wd: float, label: str) -> Job:
    """A base finetuned on a target with one seed and weight decay, with the target budget and hyperparameters."""
    hp = cfg.finetune.model_copy(update={"weight_decay": wd}).model_dump(mode="json")
    params = {"model": model, "task": _task_params(cfg.task_refs()[target], cfg.family_of(target))
              | {"fingerprint": facts[target].fingerprint_target},
              "max_train": cfg.budgets.max_train_target, "hparams": hp, "seed": seed, "save": False}
    return plan.add(make_job("finetune", label, params, deps))


def probe_job(plan: Plan, cfg: ExperimentConfig, facts: dict[str, TaskFacts], model: dict[str, str],
              deps: tuple[str, ...], task: str, seed: int, label: str) -> Job:
    """A linear probe of a base on a task (features of the frozen base, a logistic regression on them), with the
    target budget and the config's probe settings."""
    params = {"model": model,
              "task": _task_params(cfg.task_refs()[task], cfg.family_of(task))
              | {"fingerprint": facts[task].fingerprint_target}
              | ({"pool_fingerprint": facts[task].fingerprint_full} if facts[task].fingerprint_full else {}),
              "max_train": cfg.budgets.max_train_target, "hparams": cfg.probe.model_dump(mode="json"), "seed": seed}
    return plan.add(make_job("probe", label, params, deps))


def _task_params(ref: TaskRef, family: str | None) -> dict[str, Any]:
    return {"name": ref.name, "spec": ref.load_spec, "text_col": ref.text_col, "label_col": ref.label_col,
            "pair_col": ref.pair_col, "family": family}


def build_plan(cfg: ExperimentConfig, facts: dict[str, TaskFacts], base_ref: str, base_fingerprint: str,
               base_model: BaseModelFacts | None = None,
               checkpoints: dict[str, CheckpointFacts] | None = None,
               selected: dict[tuple[str, ...], Selected] | None = None,
               base_origin: dict[str, str] | None = None) -> Plan:
    """Every job of the experiment, deduplicated by key, plus the runs the report will show.

    `base_model`: what basefuse trained into the base model, if it made it (None: provenance unknown).
    `checkpoints`: the pool checkpoints among the sources (resolved and fingerprinted), by name.
    `selected`: with `selection` in the config, what it chose per candidate pool (see `selection_pools`).
    `base_origin`: how a node without the folder `base_ref` fetches the base model (`locate.origin_of`)."""
    contents = {n: f.content for n, f in facts.items() if f.content is not None}
    _check_declared_data(cfg, contents)
    _check_probe_tasks(cfg, contents)
    check_distinct_content(contents)  # before anything else: two names for one data set defeat leave-one-out
    plan = Plan()
    base = {"base": base_ref, **(base_origin or {}), "fingerprint": base_fingerprint}
    targets = cfg.target_names()

    def finetuned(name: str, start: dict[str, str] | None, label: str, seed: int | None = None) -> str:
        return source_finetune(plan, cfg, facts, base, name, start, label, seed)

    add_sources(plan, cfg, facts, base, checkpoints)

    def fused(parts: list[tuple[str, str]], method: FusionSettings, start: dict[str, str] | None = None,
              label: str = "") -> dict[str, str]:
        return fuse_job(plan, parts, method, start or base, label)

    def model_from(sources: list[str], method: FusionSettings) -> tuple[dict[str, str], tuple[str, ...]]:
        return base_from(plan, sources, method, base)

    def add_target(target: str, model: dict[str, str], deps: tuple[str, ...], seed: int, wd: float,
                   **run: Any) -> None:
        """The base evaluated on a target with one seed: finetuned, linearly probed, or both (`evaluation`)."""
        fam = cfg.family_of(target)
        model = model | ({"fingerprint": base_fingerprint} if "base" in model and "job" not in model else {})
        name = base_label(run["condition"], None, run.get("iteration"))
        if run.get("source_family") == SEEN:
            name += " (seen)"
        if run.get("chain_seed"):
            name += f" chain seed {run['chain_seed']}"
        row = dict(target=target, target_family=fam, seed=seed, weight_decay=wd,
                   provenance=_unknown_provenance(plan, deps), **run)
        if cfg.evaluation in ("finetune", "both"):
            job = target_finetune_job(plan, cfg, facts, model, deps, target, seed, wd,
                                      f"{name} -> {target} (seed {seed}, wd {wd:g})")
            plan.runs.append(PlannedRun(job_key=job.key, **row))
        # a probe trains no body: weight decay plays no part, so it is probed once (at the first weight decay), not
        # copied into rows that would make a weight-decay comparison out of identical numbers
        if cfg.evaluation in ("linear_probe", "both") and wd == cfg.weight_decays[0]:
            job = probe_job(plan, cfg, facts, model, deps, target, seed, f"probe {name} -> {target} (seed {seed})")
            plan.runs.append(PlannedRun(job_key=job.key, evaluation=LINEAR_PROBE, **row))

    for target in targets:
        for group, pool in _source_groups(cfg, target):
            _check_pool(cfg, target, group, pool)
    chains = _cold_chains(cfg, targets, fused, finetuned) if cfg.cold_fusion else {}
    # Seed-major order: the first results of a long run already cover every target and condition.
    for wd in cfg.weight_decays:
        for seed in cfg.seeds:
            for target in targets:
                if "pretrained" in cfg.conditions:
                    add_target(target, base, (), seed, wd, condition="pretrained",
                               source_family=None, sources=())
                for group, pool in _source_groups(cfg, target):
                    if _fuses(cfg, group):
                        for condition, method in cfg.fusion_conditions():
                            model, deps = model_from(pool, method)
                            add_target(target, model, deps, seed, wd, condition=condition, source_family=group,
                                       sources=tuple(sorted(pool)), n_fused=len(pool), method=method.method)
                    if "intertrained" in cfg.conditions and group != "all":
                        for src in _intertrain_sources(cfg, pool, facts, plan):
                            model, deps = model_from([src], cfg.fusions()[0])
                            add_target(target, model, deps, seed, wd, condition="intertrained",
                                       source_family=group, sources=(src,), n_fused=1)
                for chain in chains.get(target, []):
                    method = cfg.cold_fusion.fusion
                    # one-shot fusion over the chain's pool: with every source contributing, iteration 1's job
                    add_target(target, chain.one_shot, (chain.one_shot["job"],), seed, wd,
                               condition=method.condition("fused"), source_family=chain.group, sources=chain.pool,
                               n_fused=len(chain.pool), method=method.method, chain_seed=chain.chain_seed)
                    for it in chain.evaluated:
                        add_target(target, it.model, (it.model["job"],), seed, wd, condition=method.condition("cold"),
                                   source_family=chain.group, sources=it.sources, n_fused=it.n_contributors,
                                   iteration=it.iteration, method=method.method, chain_seed=chain.chain_seed)
    if cfg.selection is not None:
        selection_pools(cfg)  # a target left without candidates is refused now, before anything runs
    plan.selection_pending = cfg.selection is not None and selected is None
    if cfg.selection is not None and selected is not None:
        _add_selected(cfg, plan, selected, model_from, add_target)
    if cfg.n_models.enabled:
        condition, method = cfg.fusion_conditions()[0]
        for target in targets:
            group, pool = _n_models_pool(cfg, target)
            for order in range(cfg.n_models.subsets):
                ranked = sorted(pool)
                random.Random(f"{target}|order|{order}").shuffle(ranked)
                max_k = min(cfg.n_models.max_k or len(ranked), len(ranked))
                for k in range(cfg.n_models.min_k, max_k + 1):
                    subset = tuple(sorted(ranked[:k]))
                    model, deps = model_from(list(subset), method)
                    for seed in cfg.n_models.seeds or cfg.seeds:
                        add_target(target, model, deps, seed, cfg.weight_decays[0], condition=condition,
                                   source_family=group, sources=subset, n_fused=k, ablation="n_models",
                                   method=method.method, order=order)
    _check_primary(cfg, plan)
    plan.prune()
    plan.provenance = check_no_leakage(plan, contents)
    base_model = base_model or unknown_base(cfg.base_model)
    check_base_model(base_model, (r.target for r in plan.runs), contents)
    plan.leakage = overlap_table(plan.jobs, _target_runs(plan), contents, plan.provenance,
                                 cfg.leakage.max_test_overlap, max_near_overlap=cfg.leakage.max_near_duplicate_overlap,
                                 jaccard=cfg.leakage.near_duplicate_jaccard, base_model=base_model)
    check_overlap(plan.leakage)
    return plan


@dataclass(frozen=True)
class Selected:
    """What selection chose over one candidate pool: the best single candidate and the greedy fused set."""

    best: str
    chosen: tuple[str, ...]


BEST_SINGLE = "best single"


def selection_pools(cfg: ExperimentConfig) -> dict[str, tuple[str, ...]]:
    """Per target, the candidates selection chooses from: every source not trained on the target (as the fused
    base leaves it out) and declared trained on no probe task (it would be ranked on its own training data)."""
    assert cfg.selection is not None
    probe = set(cfg.selection.probe)
    out = {}
    for target in cfg.target_names():
        pool = tuple(sorted(s for s in _left_out(cfg, cfg.source_names(), target)
                            if not (cfg.trained_on(s) or frozenset()) & probe))
        if not pool:
            raise BasefuseError(f"selection: target {target!r} has no candidate left (every source was trained on "
                                "it or on a probe task): add sources, or choose other probe tasks")
        out[target] = pool
    return out


def _add_selected(cfg: ExperimentConfig, plan: Plan, selected: dict[tuple[str, ...], Selected] | None,
                  model_from: Callable[..., tuple[dict[str, str], tuple[str, ...]]],
                  add_target: Callable[..., None]) -> None:
    """`best single` and `fused[greedy]` per target, from what selection chose over its pool."""
    pools = selection_pools(cfg)
    missing = sorted({p for p in pools.values()} - set(selected or {}))
    if missing:
        raise BasefuseError(f"selection over {'+'.join(missing[0])} has not run yet: run the experiment (or "
                            "`basefuse rank --select greedy`) to choose the set before planning its targets")
    method = cfg.fusions()[0]
    for wd in cfg.weight_decays:
        for seed in cfg.seeds:
            for target, pool in pools.items():
                sel = (selected or {})[pool]
                model, deps = model_from([sel.best], method)
                add_target(target, model, deps, seed, wd, condition=BEST_SINGLE, source_family=None,
                           sources=(sel.best,), n_fused=1)
                model, deps = model_from(list(sel.chosen), method)
                add_target(target, model, deps, seed, wd, condition=GREEDY, source_family="all",
                           sources=sel.chosen, n_fused=len(sel.chosen), method=method.method)


def _check_probe_tasks(cfg: ExperimentConfig, contents: dict[str, TaskContent]) -> None:
    """Probe tasks and targets must be disjoint by content too (a target under another name would choose the
    fused set on the target itself)."""
    if cfg.selection is None:
        return
    lk = cfg.leakage
    for p in cfg.selection.probe:
        if p not in contents:
            continue
        mine = set(content_fingerprints(contents[p]))
        for t in cfg.target_names():
            if t not in contents:
                continue
            if mine & set(content_fingerprints(contents[t])):
                raise LeakageError(f"selection: probe task {p!r} holds the data of target {t!r} (same rows, by "
                                   "content): probe tasks and targets must be disjoint")
            n = len(contents[t].test) or 1
            exact = exact_hits(contents[t], contents[p])
            near = near_hits_of(contents[t], contents[p], lk.near_duplicate_jaccard) - exact
            if len(exact) / n > lk.max_test_overlap or len(near) / n > lk.max_near_duplicate_overlap:
                raise LeakageError(f"selection: {len(exact)} test texts of target {t!r} occur in probe task {p!r} "
                                   f"(and {len(near)} more as near-duplicates), above the leakage limits: the set "
                                   "would be chosen partly on the target's test texts; use other probe tasks")


def _check_primary(cfg: ExperimentConfig, plan: Plan) -> None:
    """A base label the config names for C1 (`primary`, or `confirmatory.fused` / `.pretrained` when set) that no
    job makes would leave the claim fixed before the data unmeasurable forever: a typo, refused now."""
    named = [("primary", n) for n in cfg.primary or ()]
    named += [(f"confirmatory.{k}", getattr(cfg.confirmatory, k)) for k in ("fused", "pretrained")
              if k in cfg.confirmatory.model_fields_set and getattr(cfg.confirmatory, k) is not None]
    if not named:
        return
    labels = sorted({base_label(r.condition, r.source_family, r.iteration) for r in plan.runs
                     if r.ablation == "main"})
    for key, name in named:
        if name not in labels:
            raise BasefuseError(f"{key}: no base is labelled {name!r} in this experiment; valid labels: "
                                f"{', '.join(labels)}")


def _fuses(cfg: ExperimentConfig, group: str) -> bool:
    if "fused" not in cfg.conditions:
        return False
    return ("all" if group == "all" else "family") in cfg.fused_groups


def _uses(cfg: ExperimentConfig, group: str) -> bool:
    return _fuses(cfg, group) or ("intertrained" in cfg.conditions and group != "all")


def _source_groups(cfg: ExperimentConfig, target: str) -> list[tuple[str, list[str]]]:
    """Each family's sources (or only the target's own family's), then all sources: always without the
    target's own task."""
    families = list(cfg.families)
    if cfg.family_bases == "own":
        families = [f for f in families if f == cfg.family_of(target)]
    groups = [(fam, _left_out(cfg, cfg.source_names(fam), target)) for fam in families]
    groups.append(("all", _left_out(cfg, cfg.source_names(), target)))
    return groups


def _left_out(cfg: ExperimentConfig, sources: list[str], target: str) -> list[str]:
    """The sources not trained on the target by name: its own finetune, and every checkpoint declaring it (one that
    holds its data under another name is refused by content; one of unknown provenance stays, marked)."""
    return [s for s in sources if target not in (cfg.trained_on(s) or ())]


def _check_pool(cfg: ExperimentConfig, target: str, group: str, pool: list[str]) -> None:
    if not _uses(cfg, group):
        return
    if not pool:
        raise BasefuseError(
            f"target {target!r} is the only source task of family {group!r}: nothing is left to fuse or intertrain "
            f"from once it is left out; add another task to {group!r} or make {target!r} a held_out task")
    if _fuses(cfg, group) and len(pool) < 2 and not cfg.allow_single_source_fusion:
        raise BasefuseError(
            f"target {target!r}: family {group!r} has only {pool[0]!r} left after leaving the target out; fusing one "
            f"model is intertraining: add sources or set allow_single_source_fusion: true")


def _intertrain_sources(cfg: ExperimentConfig, pool: list[str], facts: dict[str, TaskFacts], plan: Plan) -> list[str]:
    if cfg.intertrained == "each":
        return sorted(pool)

    def size(s: str) -> int:  # a checkpoint: the train splits of the tasks it declares (unknown: 0)
        return sum(facts[t].train_size for t in cfg.trained_on(s) or () if t in facts)

    # The seed paper intertrains on the family's largest remaining dataset; ties go to the name.
    return [max(pool, key=lambda s: (size(s), s))]


def _checkpoint_job(plan: Plan, ref: CheckpointRef, ck: CheckpointFacts, facts: dict[str, TaskFacts]) -> str:
    """A pool checkpoint as a node of the graph, like a finished source finetune: its key holds its weights'
    fingerprint and what it declares it was trained on (with each task's data fingerprint, where loaded)."""
    trained: Any = "unknown"
    if ref.known:
        trained = [{"name": t.name, "fingerprint": facts[t.name].fingerprint_source if t.name in facts else None}
                   for t in ref.trained_on]
    params = {"name": ref.name, "base": ck.path, **ck.origin, "fingerprint": ck.fingerprint, "trained_on": trained}
    return plan.add(make_job("checkpoint", f"checkpoint {ref.name}", params)).key


def _unknown_provenance(plan: Plan, deps: tuple[str, ...]) -> str | None:
    """'unknown' if a pool checkpoint of unknown provenance is in the base, through any depth."""
    return "unknown" if any(unknown_checkpoints(plan.jobs, d) for d in deps) else None


def _check_declared_data(cfg: ExperimentConfig, contents: dict[str, TaskContent]) -> None:
    """A checkpoint declared trained on a target's data under another name (a renamed or shuffled copy) is refused
    by content, naming the checkpoint (leave-one-out only leaves out the target's own name)."""
    targets = {t: contents[t] for t in cfg.target_names() if t in contents}
    for ck in cfg.checkpoints().values():
        for t in ck.trained_on if ck.known else []:
            if t.name in targets or t.name not in contents:
                continue
            mine = set(content_fingerprints(contents[t.name]))
            for target, c in targets.items():
                if mine & set(content_fingerprints(c)):
                    raise LeakageError(f"leakage: checkpoint {ck.name!r} was trained on {t.name!r}, which holds the "
                                       f"data of target {target!r} (same rows, by content): drop {target!r} from "
                                       "targets, or leave the checkpoint out of the pool")


def _n_models_pool(cfg: ExperimentConfig, target: str) -> tuple[str, list[str]]:
    """The sources a number-of-models subset is drawn from: every other source, or the target's family's."""
    if cfg.n_models.within_family:
        fam = cfg.family_of(target)
        return fam, _left_out(cfg, cfg.source_names(fam), target)
    return "all", _left_out(cfg, cfg.source_names(), target)


#: The source family of unseen ColD Fusion rows: a target's chain leaves out its whole family.
COLD_GROUP = OTHER_FAMILIES


@dataclass(frozen=True)
class ColdIteration:
    """The shared model after one ColD Fusion iteration of one chain."""

    iteration: int
    model: dict[str, str]  # reference to the fusion job
    sources: tuple[str, ...]  # every task that contributed up to this iteration
    n_contributors: int  # contributors of this iteration


@dataclass(frozen=True)
class PlannedChain:
    """One run of a ColD chain over a pool (one chain seed), as one target sees it."""

    group: str  # the rows' source family: "other families" (unseen) or "seen"
    pool: tuple[str, ...]  # every source the chain may draw from
    chain_seed: int
    one_shot: dict[str, str]  # one-shot fusion over the pool (with all contributing: iteration 1 itself)
    evaluated: tuple[ColdIteration, ...]  # the iterations targets are finetuned from


class Finetuned(Protocol):
    """finetuned(task, start model or None for the base, label, seed or None for source_seed) -> job key"""

    def __call__(self, name: str, start: dict[str, str] | None, label: str, seed: int | None = None) -> str: ...


#: fused([(task, finetune key)], method, start model or None for the base, label) -> model reference
Fused = Callable[..., dict]


def _cold_pools(cfg: ExperimentConfig, target: str) -> list[tuple[str, tuple[str, ...]]]:
    """(source family of the rows, pool) per ColD setting the target is evaluated in.

    Unseen: every source outside the target's family (a held-out target: every source). Seen: every source,
    the target's own task included; only for targets that are sources (a held-out target never contributed,
    so a "seen" row would be an unseen one under another name)."""
    cold = cfg.cold_fusion
    assert cold is not None
    fam = cfg.family_of(target)
    out = []
    for setting in cold.settings():
        if setting == "unseen":
            pool = tuple(sorted(s for s in cfg.source_names() if cfg.family_of(s) != fam))
            if not pool:
                raise BasefuseError(f"cold_fusion: target {target!r}: every source is in its family {fam!r}, so its "
                                    "chain would have no contributors; add a family of sources")
            out.append((COLD_GROUP, pool))
        elif target in cfg.source_names():
            out.append((SEEN, tuple(sorted(cfg.source_names()))))
    return out


def _cold_chains(cfg: ExperimentConfig, targets: list[str], fused: Fused,
                 finetuned: Finetuned) -> dict[str, list[PlannedChain]]:
    """Per target, the ColD chains it is evaluated on: per setting (unseen: one chain per family of targets,
    over every source outside that family; seen: one chain over every source) and per chain seed.

    Iteration t finetunes each contributor from the shared model of t-1 (t = 1: the base) and fuses them,
    relative to that model, into the shared model of t. Each chain comes with the one-shot fusion over its pool
    (every pool source finetuned from the base with the chain seed's contributor seed): with `contributors: all`
    that is iteration 1's very fusion job.
    """
    cold = cfg.cold_fusion
    assert cold is not None
    by_pool: dict[tuple[tuple[str, ...], int], tuple[dict[str, str], list[ColdIteration]]] = {}
    out: dict[str, list[PlannedChain]] = {}
    for target in targets:
        for group, pool in _cold_pools(cfg, target):
            for c in cold.chain_seeds:
                if (pool, c) not in by_pool:
                    chain = _cold_chain(cfg, pool, c, fused, finetuned)
                    by_pool[(pool, c)] = (_one_shot(cfg, pool, c, fused, finetuned), chain)
                one_shot, chain = by_pool[(pool, c)]
                out.setdefault(target, []).append(PlannedChain(
                    group, pool, c, one_shot, tuple(it for it in chain if it.iteration in cold.evaluated())))
    if cold.evaluate == "seen" and not out:
        raise BasefuseError("cold_fusion.evaluate is 'seen', but no target is a source task (held-out targets "
                            "never contribute): list a source task under targets or use 'unseen'")
    return out


def _contributor_seed(cfg: ExperimentConfig, chain_seed: int) -> int:
    """Chain seed 0 finetunes with `source_seed` (so iteration 1's contributors are the plain source finetunes);
    chain seed c with `source_seed + c`."""
    return cfg.source_seed + chain_seed


def _one_shot(cfg: ExperimentConfig, pool: tuple[str, ...], chain_seed: int, fused: Fused,
              finetuned: Finetuned) -> dict[str, str]:
    """One-shot fusion (the chain's method) of every source of the pool, finetuned from the base."""
    cold = cfg.cold_fusion
    assert cold is not None
    suffix = f", chain seed {chain_seed}" if chain_seed else ""
    seed = _contributor_seed(cfg, chain_seed)
    parts = [(n, finetuned(n, None, f"cold one-shot contributor {n}{suffix}", seed)) for n in pool]
    if len(parts) == 1:
        return {"job": parts[0][1], "kind": "finetune"}
    return fused(parts, cold.fusion, None, f"fuse {'+'.join(pool)} (one-shot over a ColD pool{suffix})")


def _cold_chain(cfg: ExperimentConfig, pool: tuple[str, ...], chain_seed: int, fused: Fused,
                finetuned: Finetuned) -> list[ColdIteration]:
    cold = cfg.cold_fusion
    assert cold is not None
    k = len(pool) if cold.contributors == "all" else cold.contributors
    if k > len(pool):
        raise BasefuseError(f"cold_fusion.contributors is {k}, but a chain has only {len(pool)} sources "
                            f"({', '.join(pool)}): lower it or use 'all'")
    if k < 2 and not cfg.allow_single_source_fusion:
        raise BasefuseError(f"cold_fusion: a chain over {', '.join(pool)} has 1 contributor per iteration; fusing "
                            "one model is intertraining: add sources or set allow_single_source_fusion: true")
    chain: list[ColdIteration] = []
    start: dict[str, str] | None = None  # iteration 0: the base
    seen: set[str] = set()
    tag = "+".join(pool)
    # chain seed 0 draws and labels as before chain seeds existed (same jobs, so older runs resume)
    draw = f"{cold.seed}|{tag}" if chain_seed == 0 else f"{cold.seed}|chain seed {chain_seed}|{tag}"
    where = f"chain {tag}" if chain_seed == 0 else f"chain {tag}, chain seed {chain_seed}"
    seed = _contributor_seed(cfg, chain_seed)
    for t in range(1, cold.iterations + 1):
        who = list(pool) if k == len(pool) else sorted(random.Random(f"{draw}|{t}").sample(pool, k))
        parts = [(n, finetuned(n, start, f"cold it{t} contributor {n} ({where})", seed)) for n in who]
        seen.update(who)
        if len(parts) == 1:
            model = {"job": parts[0][1], "kind": "finetune"}
        else:
            model = fused(parts, cold.fusion, start, f"cold it{t} fuse {'+'.join(who)}"
                          + (f" (chain seed {chain_seed})" if chain_seed else ""))
        chain.append(ColdIteration(t, model, tuple(sorted(seen)), len(who)))
        start = model
    return chain


def _base_label(r: PlannedRun) -> str:
    """The base as the leakage table names it; a number-of-models subset by its sources (many share 'all')."""
    if r.ablation == "n_models":
        return f"{r.condition} ({r.n_fused} models: {'+'.join(r.sources)})"
    return base_label(r.condition, r.source_family, r.iteration)


def _target_runs(plan: Plan) -> list[TargetRun]:
    # only the seen setting's rows may have trained on the target's train split (never on its test texts: the
    # overlap check counts the target's own train and validation split like any other source's)
    return [TargetRun(r.target, r.job_key, _base_label(r), may_see_target=r.source_family == SEEN)
            for r in plan.runs]


def check_no_leakage(plan: Plan, contents: dict[str, TaskContent] | None = None) -> dict[str, frozenset[str]]:
    """No target is finetuned from a base whose provenance, through any depth, holds the target's task or
    its content: a hard invariant. Returns every job's provenance."""
    return check_provenance(plan.jobs, _target_runs(plan), contents)
