"""Experiment configuration: one YAML file, validated with pydantic, unknown keys rejected by name."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationError,
                      field_validator, model_validator)

from basefuse.errors import BasefuseError
from basefuse.experiments.records import CONFIG_CONDITIONS, condition_name
from basefuse.experiments.strict_yaml import DuplicateKeyError, load_strict
from basefuse.finetuning.config import FinetuneConfig
from basefuse.probing.config import ProbeConfig

_STRICT = ConfigDict(extra="forbid")


def _no_bool(v: object) -> object:
    # YAML `true` is a bool, which pydantic would take as the integer 1.
    if isinstance(v, bool):
        raise ValueError(f"{str(v).lower()} is a boolean, not a seed: give a whole number >= 0")
    return v


Seed = Annotated[int, BeforeValidator(_no_bool), Field(ge=0)]


class TaskRef(BaseModel):
    """A task by name, and where its data comes from (a built-in name, a data file/folder or `hf:...`)."""

    model_config = _STRICT

    name: str
    spec: str | None = None
    text_col: str = "text"
    label_col: str = "label"
    pair_col: str | None = None

    @property
    def load_spec(self) -> str:
        return self.spec or self.name


class CheckpointRef(BaseModel):
    """An existing finetune of the base model used as a source, like a finished source finetune of basefuse.

    `trained_on`: the tasks it was finetuned on (names of this config's tasks, built-in names, data specs, or full
    task entries), which enter the leakage check like a source task's data; `unknown` only with
    `leakage.allow_unknown: true`, and every base built from it is then marked "provenance unknown"."""

    model_config = _STRICT

    name: str = Field(pattern=r"^[A-Za-z0-9_.@+-]+$")
    model: str = Field(description="a model folder, a hub id, or hub id@revision")
    trained_on: list[TaskRef | str] | Literal["unknown"] = Field(
        description="the tasks it was finetuned on, or 'unknown'")
    allow_unrelated: bool = Field(False, description="use it even if it is far from the base model (relative "
                                  "distance over 0.5: not a finetune of it?), as `fuse --allow-unrelated`")

    @field_validator("trained_on", mode="after")
    @classmethod
    def _refs(cls, v: list[TaskRef | str] | str) -> list[TaskRef] | str:
        if v == "unknown":
            return v
        if not v:
            raise ValueError("lists no task: name the tasks it was finetuned on, or write `unknown`")
        return [TaskRef(name=t) if isinstance(t, str) else t for t in v]

    @property
    def known(self) -> bool:
        return self.trained_on != "unknown"


def _source_kind(v: object) -> str:
    """A family entry is a checkpoint when it names a `model`, a task otherwise (so errors speak of the one meant)."""
    if isinstance(v, str):
        return "name"
    if isinstance(v, dict):
        return "checkpoint" if "model" in v else "task"
    return "checkpoint" if isinstance(v, CheckpointRef) else "task"


SourceEntry = Annotated[Union[Annotated[str, Tag("name")], Annotated[TaskRef, Tag("task")],
                              Annotated[CheckpointRef, Tag("checkpoint")]], Discriminator(_source_kind)]


class Budgets(BaseModel):
    model_config = _STRICT

    max_train_source: int | None = Field(None, ge=2, description="train examples per source task")
    max_train_target: int | None = Field(None, ge=2, description="train examples per target task")


class NModelsAblation(BaseModel):
    """Does fusing more models help? Nested subsets: the k models are the first k of a random order of the pool,
    so a curve over k adds one model at a time instead of comparing unrelated draws."""

    model_config = _STRICT

    enabled: bool = False
    min_k: int = Field(2, ge=1, description="smallest subset (1 would be intertraining on a random source)")
    max_k: int | None = Field(None, ge=1, description="largest subset (default: the whole pool)")
    subsets: int = Field(1, ge=1, description="random orders of the pool, each giving one nested chain of subsets")
    seeds: list[Seed] | None = Field(None, description="target seeds to run (default: every seed of the config)")
    within_family: bool = Field(False, description="draw from the target's own family (default: every source)")

    @model_validator(mode="after")
    def _k_range(self) -> "NModelsAblation":
        if self.max_k is not None and self.max_k < self.min_k:
            raise ValueError(f"max_k ({self.max_k}) is below min_k ({self.min_k})")
        return self


class FusionSettings(BaseModel):
    """One fusion method; its condition is `fused` for plain averaging, else `fused[NAME]` (NAME: its name or method)."""

    model_config = _STRICT

    method: str = "average"
    params: dict[str, bool | float | int | str] = {}
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$",
                             description="its condition name fused[NAME] (default: the method)")
    allow_unrelated: bool = Field(False, description="fuse even a source that is far from the base (relative "
                                  "distance over 0.5), as `fuse --allow-unrelated`")

    def condition(self, kind: str = "fused") -> str:
        return condition_name(kind, self.name or self.method)

    def check(self, where: str) -> None:
        """The method and its parameters checked against the method's declaration, now rather than after every
        source finetune has run."""
        from basefuse.fusion.methods import check_params, get_method

        try:
            m = get_method(self.method)
            check_params(m, dict(self.params))
        except BasefuseError as e:
            raise ValueError(f"{where}: {e}") from None
        if m.weights == "required":
            raise ValueError(f"{where}: method {self.method!r} needs per-source weights, which experiments do not set: "
                             f"use {', '.join(_experiment_methods())}")
        if m.max_sources is not None:
            raise ValueError(f"{where}: method {self.method!r} fuses at most {m.max_sources} sources, and an "
                             f"experiment fuses pools of any size: use {', '.join(_experiment_methods())}")


def _experiment_methods() -> list[str]:
    """Methods an experiment can run: no per-source weights needed, any number of sources."""
    from basefuse.fusion.methods import METHODS

    return [m.name for m in METHODS.values() if m.weights != "required" and m.max_sources is None]


class ColdFusionSettings(BaseModel):
    """ColD Fusion (Don-Yehiya et al., 2023): each iteration finetunes the contributors from the shared model of
    the previous one (iteration 0 is the base) and fuses them into the next shared model."""

    model_config = _STRICT

    iterations: int = Field(ge=1, le=100)
    contributors: Literal["all"] | Annotated[int, Field(ge=1)] = Field(
        "all", description="contributors per iteration: all of the chain's sources, or k drawn anew each iteration")
    seed: Seed = Field(0, description="seed of the contributor draws")
    chain_seeds: list[Seed] = Field(
        [0], description="the whole chain (draws and contributor finetune seeds) is run once per chain seed; a "
                         "report cell (target, seed) is the mean over them")
    evaluate: Literal["unseen", "seen", "both"] = Field(
        "unseen", description="unseen: a target's chain leaves out its whole family; seen: one chain over every "
                              "source, the target's own task (its train split, never its test texts) included, "
                              "rows `cold@T (seen)`; both: the two side by side")
    evaluate_iterations: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, description="iterations whose shared model targets are finetuned from (default: every one)")
    fusion: FusionSettings = FusionSettings()

    @model_validator(mode="before")
    @classmethod
    def _old_evaluate(cls, data: object) -> object:
        """`evaluate: [iterations]` was the name of `evaluate_iterations` before `evaluate` said seen/unseen:
        configs (and the experiment.yaml of run directories) written then still load, meaning the same."""
        if isinstance(data, dict) and isinstance(data.get("evaluate"), list):
            if "evaluate_iterations" in data:
                raise ValueError("evaluate lists iterations and evaluate_iterations is set too: list the "
                                 "iterations under evaluate_iterations only")
            data = {k: v for k, v in data.items() if k != "evaluate"} | {"evaluate_iterations": data["evaluate"]}
        return data

    @field_validator("chain_seeds")
    @classmethod
    def _chain_seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("must list at least one chain seed")
        if len(set(v)) != len(v):
            raise ValueError(f"has duplicates: {v}")
        return v

    @model_validator(mode="after")
    def _check(self) -> "ColdFusionSettings":
        bad = [t for t in self.evaluate_iterations or [] if t > self.iterations]
        if bad:
            raise ValueError(f"evaluate_iterations lists iteration(s) {bad} beyond iterations={self.iterations}")
        self.fusion.check("cold_fusion.fusion")
        return self

    def evaluated(self) -> list[int]:
        its = self.evaluate_iterations
        return sorted(set(its)) if its else list(range(1, self.iterations + 1))

    def settings(self) -> list[str]:
        """The conditions evaluated, "unseen" and/or "seen", in that order."""
        return ["unseen", "seen"] if self.evaluate == "both" else [self.evaluate]

    def fingerprint_view(self) -> dict:
        """What the config fingerprint hashes: the shape these settings had before `chain_seeds` and the
        seen/unseen `evaluate` existed (the iteration list under its old name), those keys counting only when
        set away from their defaults, so a run directory made then resumes."""
        data = self.model_dump(mode="json")
        setting, chain_seeds = data.pop("evaluate"), data.pop("chain_seeds")
        data["evaluate"] = data.pop("evaluate_iterations")
        if setting != "unseen":
            data["setting"] = setting
        if chain_seeds != [0]:
            data["chain_seeds"] = chain_seeds
        return data


class LeakageSettings(BaseModel):
    """How much of a target's test set a base may have trained on before the run is refused: exact copies (by
    normalised text, or as the base tokenizer sees it) and near-duplicates (see basefuse.data.near_dup)."""

    model_config = _STRICT

    max_test_overlap: float = Field(0.01, ge=0, le=1, description="largest allowed share of a target's test texts "
                                    "found in the training data of any task in a base's provenance")
    max_near_duplicate_overlap: float = Field(0.01, ge=0, le=1, description="largest allowed share of a target's "
                                              "test texts with a near-duplicate there (exact copies count above)")
    near_duplicate_jaccard: float = Field(0.8, gt=0, le=1, description="word-bigram Jaccard similarity from which "
                                          "two texts are near-duplicates (the same words in any order always are)")
    allow_unknown: bool = Field(False, description="accept pool checkpoints with `trained_on: unknown`; every base "
                                "built from one is marked 'provenance unknown' and cannot be proven clean")


class SelectionSettings(BaseModel):
    """Which pool members go into the fusion, chosen on probe tasks only (a greedy soup, Wortsman et al. 2022):
    candidates in the order of their own probe score, each added to the fused set only if the probe score of
    the fusion does not drop. The chosen set is the condition `fused[greedy]`; the top candidate is `best single`.

    Our choices: a candidate declared trained on a probe task is no candidate (it would be ranked on its own
    training data); candidates are ranked per target over the target's pool (its own model left out); ties in
    the ranking go to the name, and a fusion that scores exactly as well as the set before it is accepted."""

    model_config = _STRICT

    strategy: Literal["greedy"] = "greedy"
    probe: list[str] = Field(min_length=1, description="probe tasks (tasks of this config, never targets)")
    seeds: list[Seed] = Field([0], min_length=1, description="linear-probe seeds averaged into each probe score")
    metric: Literal["accuracy", "macro_f1"] = "accuracy"

    @field_validator("probe", "seeds")
    @classmethod
    def _unique(cls, v: list) -> list:
        if len(set(v)) != len(v):
            raise ValueError(f"has duplicates: {v}")
        return v


#: SD over targets of the per-target mean gain of fused (all) over pretrained in the last committed complete run:
#: docs/results/paper-cpu/raw/results.jsonl (9 targets, 3 seeds, weight decay 0) gives 2.2506 points (ddof=1; the
#: "std across targets" of fused (all) in that report). Our choice of default, used only for planning power.
DEFAULT_ASSUMED_TARGET_SD = 2.25


class ConfirmatorySettings(BaseModel):
    """The confirmatory plan, fixed before the data: one test per claim of the paper (docs/statistics.md), Holm over
    these five only; every other comparison in the report is exploratory.

    C1 `fused` vs `pretrained` (mean gain); C2 `fused` vs the `intertrained` runs of each target (pooled over every
    target with both, intertrained runs of a cell averaged first); C3 SD over targets of the fused gains over that of
    the intertrained gains (both over pretrained); C4 per target, the weight decay difference in differences
    [(fused - pretrained)_hi - (fused - pretrained)_lo] - [(intertrained - pretrained)_hi - (...)_lo]; C5 per target,
    log(seed std of fused / seed std of pretrained)."""

    model_config = _STRICT

    fused: str | None = Field(None, description="the fused base's label (default: the first fusion method over "
                                                "all sources, e.g. 'fused (all)')")
    pretrained: str = Field("pretrained", description="the reference base's label")
    intertrained: str = Field("intertrained", description="the condition whose runs are each target's own "
                                                          "intertrained base(s) (C2, C3, C4)")
    assumed_target_sd: float = Field(DEFAULT_ASSUMED_TARGET_SD, gt=0, description=(
        "assumed SD over targets of a per-target mean difference (points): sets the planned detectable effect"))
    alpha: float = Field(0.05, gt=0, lt=1, description="family-wise level over the five claims (Holm)")


class ExperimentConfig(BaseModel):
    """What to compare: the base, source families, targets, conditions, seeds and budgets."""

    model_config = _STRICT

    name: str = "experiment"
    base_model: str = "minilm"
    families: dict[str, list[SourceEntry]] = Field(
        description="source tasks (finetuned from the base) and existing checkpoints (a pool), by family")
    held_out: dict[str, list[TaskRef | str]] = Field(
        default_factory=dict, description="target-only tasks by family (never used as sources)")
    targets: list[str] | None = Field(None, min_length=1, description="target task names (default: every task)")
    conditions: list[Literal[CONFIG_CONDITIONS]] = list(CONFIG_CONDITIONS)  # type: ignore[valid-type]
    fused_groups: list[Literal["family", "all"]] = ["family", "all"]
    intertrained: Literal["largest", "each"] = "largest"
    family_bases: Literal["every", "own"] = Field(
        "every", description="family-level fused/intertrained bases for every family, or only the target's own")
    allow_single_source_fusion: bool = False
    seeds: list[Seed] = [0, 1, 2, 3, 4]
    source_seed: Seed = 0
    weight_decays: list[Annotated[float, Field(ge=0)]] = [0.0]
    finetune: FinetuneConfig = FinetuneConfig()
    source_finetune: FinetuneConfig | None = None
    budgets: Budgets = Budgets()
    fusion: FusionSettings | list[FusionSettings] = Field(
        FusionSettings(), description="a fusion method, or a list of them compared side by side")
    cold_fusion: ColdFusionSettings | None = None
    n_models: NModelsAblation = NModelsAblation()
    primary: tuple[str, str] | None = Field(
        None, description="deprecated alias of C1: two base labels, e.g. ['fused (all)', 'pretrained']; "
                          "prefer confirmatory.fused and confirmatory.pretrained")
    confirmatory: ConfirmatorySettings = ConfirmatorySettings()
    leakage: LeakageSettings = LeakageSettings()
    selection: SelectionSettings | None = Field(None, description="choose the fused set on probe tasks (greedy)")
    probe: ProbeConfig = Field(ProbeConfig(), description="linear-probe settings (evaluation and selection)")
    evaluation: Literal["finetune", "linear_probe", "both"] = Field(
        "finetune", description="how every base is evaluated on a target: finetuned, linearly probed (frozen base, "
                                "logistic regression on its features), or both side by side")

    @field_validator("families", "held_out", mode="after")
    @classmethod
    def _normalise_refs(cls, v: dict[str, list[TaskRef | CheckpointRef | str]]
                        ) -> dict[str, list[TaskRef | CheckpointRef]]:
        return {fam: [TaskRef(name=t) if isinstance(t, str) else t for t in tasks] for fam, tasks in v.items()}

    @field_validator("held_out", mode="after")
    @classmethod
    def _held_out_tasks(cls, v: dict[str, list[TaskRef | CheckpointRef]]) -> dict[str, list[TaskRef | CheckpointRef]]:
        for fam, refs in v.items():
            for r in refs:
                if isinstance(r, CheckpointRef):
                    raise ValueError(f"{fam}: {r.name!r} is a checkpoint; held_out lists target tasks only (put "
                                     "checkpoints under families)")
        return v

    @field_validator("seeds", "weight_decays", "conditions", "targets")
    @classmethod
    def _non_empty_unique(cls, v: list | None) -> list | None:
        if v is None:  # targets: every task
            return v
        if not v:
            raise ValueError("must list at least one value")
        if len(set(v)) != len(v):
            raise ValueError(f"has duplicates: {v}")
        return v

    @model_validator(mode="after")
    def _check_tasks(self) -> "ExperimentConfig":
        seen: dict[str, str] = {}
        specs: dict[tuple[str, str, str, str | None], str] = {}
        for group in (self.families, self.held_out):
            for fam, refs in group.items():
                if not refs:
                    raise ValueError(f"family {fam!r} lists no tasks")
                for ref in refs:
                    if ref.name in seen:
                        raise ValueError(f"duplicate task name {ref.name!r} (in families {seen[ref.name]!r} "
                                         f"and {fam!r}): give each task a unique name")
                    seen[ref.name] = fam
                    if isinstance(ref, CheckpointRef):
                        continue
                    data = (ref.load_spec, ref.text_col, ref.label_col, ref.pair_col)
                    if data in specs:  # two names for the same data would defeat leave-one-out
                        raise ValueError(f"tasks {specs[data]!r} and {ref.name!r} load the same data "
                                         f"({ref.load_spec}): list it once")
                    specs[data] = ref.name
        if not self.families:
            raise ValueError("families is empty: list at least one family of source tasks")
        fusions = self.fusions()
        for i, f in enumerate(fusions):
            f.check("fusion" if isinstance(self.fusion, FusionSettings) else f"fusion.{i}")
        names = [c for c, _ in self.fusion_conditions()]
        if len(set(names)) != len(names):
            raise ValueError(f"fusion: two methods share a condition name ({', '.join(names)}): give each a "
                             "distinct `name`")
        if self.primary is not None and self.confirmatory.fused is not None:
            raise ValueError("primary and confirmatory.fused both name C1's fused base: keep confirmatory.fused "
                             "(primary is its deprecated alias)")
        checkpoints = self.checkpoints()
        for t in self.targets or []:
            if t in checkpoints:
                raise ValueError(f"target {t!r} is a checkpoint of the pool; targets are tasks: list tasks under "
                                 "targets (a held_out family for tasks that are no source)")
            if t not in seen:
                raise ValueError(f"target {t!r} is not a task of any family or held_out group; known: {sorted(seen)}")
        self._check_pool()
        self._check_selection()
        return self

    def _check_selection(self) -> None:
        sel = self.selection
        if sel is None:
            return
        if any(f.condition() == "fused[greedy]" for f in self.fusions()):
            raise ValueError("fusion: a method named 'greedy' would share its label with the selected set "
                             "fused[greedy]: give it another name")
        tasks = self.task_refs()
        for t in sel.probe:
            if t not in tasks:
                raise ValueError(f"selection.probe: {t!r} is not a task of this config; known: {sorted(tasks)}")
            if self.targets and t in self.targets:
                raise ValueError(f"selection.probe: {t!r} is also a target: the fused set would be chosen on the "
                                 "target itself; probe tasks and targets must be disjoint")
        if not self.target_names():
            raise ValueError("selection: every task is a probe task, so nothing is left to evaluate on")

    def _check_pool(self) -> None:
        checkpoints = self.checkpoints()
        if not checkpoints:
            return
        if not self.target_names():
            raise ValueError("families hold checkpoints only: add the target tasks under held_out")
        unknown = [c.name for c in checkpoints.values() if not c.known]
        if unknown and not self.leakage.allow_unknown:
            raise ValueError(f"checkpoint {unknown[0]!r}: trained_on is unknown, so no target can be proven clean of "
                             "its data: list the tasks it was finetuned on, or set leakage.allow_unknown: true to "
                             "run anyway (every base built from it is then marked 'provenance unknown')")
        if self.cold_fusion is not None:
            raise ValueError(f"cold_fusion finetunes every source again from the shared model, which an existing "
                             f"checkpoint ({next(iter(checkpoints))!r}) cannot be: use source tasks for ColD Fusion")
        tasks: dict[str, TaskRef] = dict(self.task_refs())
        for c in checkpoints.values():
            for t in c.trained_on if c.known else []:
                if t.name in checkpoints:
                    raise ValueError(f"checkpoint {c.name!r}: trained_on names {t.name!r}, which is a checkpoint: "
                                     "name the tasks it was finetuned on")
                own = tasks.setdefault(t.name, t)
                if t != TaskRef(name=t.name) and t != own:
                    raise ValueError(f"checkpoint {c.name!r}: trained_on names task {t.name!r} with other data than "
                                     "another entry of that name: give it another name")

    # ---- derived views -------------------------------------------------------------------
    def fusions(self) -> list[FusionSettings]:
        return list(self.fusion) if isinstance(self.fusion, list) else [self.fusion]

    def fusion_conditions(self) -> list[tuple[str, FusionSettings]]:
        """(condition name, method) per fusion method, e.g. ("fused", average), ("fused[ties]", ties)."""
        return [(f.condition(), f) for f in self.fusions()]

    def primary_comparison(self) -> tuple[str, str]:
        """C1's two bases: `primary` (the deprecated alias) if set, else `confirmatory.fused` (default: the first
        fusion method over all sources) vs `confirmatory.pretrained`."""
        c = self.confirmatory
        return self.primary or (c.fused or f"{self.fusions()[0].condition()} (all)", c.pretrained)

    @property
    def source_hparams(self) -> FinetuneConfig:
        return self.source_finetune or self.finetune

    def task_refs(self) -> dict[str, TaskRef]:
        """Every task of the config (sources and held-out targets), by name; pool checkpoints are not tasks."""
        return {r.name: r for g in (self.families, self.held_out) for refs in g.values() for r in refs
                if isinstance(r, TaskRef)}

    def checkpoints(self) -> dict[str, CheckpointRef]:
        """The existing checkpoints among the sources, by name."""
        return {r.name: r for refs in self.families.values() for r in refs if isinstance(r, CheckpointRef)}

    def trained_on(self, source: str) -> frozenset[str] | None:
        """The tasks a source's model was finetuned on: a source task's own name, a checkpoint's declared tasks,
        None for a checkpoint of unknown provenance."""
        ck = self.checkpoints().get(source)
        if ck is None:
            return frozenset({source})
        return frozenset(t.name for t in ck.trained_on) if ck.known else None

    def provenance_refs(self) -> dict[str, TaskRef]:
        """Tasks only a checkpoint's `trained_on` names (not a source or target here): loaded for the leakage
        check alone."""
        tasks = self.task_refs()
        out: dict[str, TaskRef] = {}
        for c in self.checkpoints().values():
            for t in c.trained_on if c.known else []:
                if t.name not in tasks:
                    out.setdefault(t.name, t)
        return out

    def family_of(self, task: str) -> str:
        for g in (self.families, self.held_out):
            for fam, refs in g.items():
                if any(r.name == task for r in refs):
                    return fam
        raise KeyError(task)

    def family_or_none(self, task: str) -> str | None:
        """A task's family, or None for a task only a checkpoint's `trained_on` names."""
        try:
            return self.family_of(task)
        except KeyError:
            return None

    def source_names(self, family: str | None = None) -> list[str]:
        fams = [family] if family else list(self.families)
        return [r.name for f in fams for r in self.families.get(f, [])]

    def target_names(self) -> list[str]:
        """The targets listed, or every task except the selection's probe tasks."""
        if self.targets:
            return list(self.targets)
        probe = set(self.selection.probe) if self.selection else set()
        return [t for t in self.task_refs() if t not in probe]

    def fingerprint(self) -> str:
        """Identifies the config's content, so a run directory is never mixed with another config's."""
        # `primary` only when set and `leakage` only when not at its default, so configs written before these keys
        # existed keep their fingerprint (neither decides any job's output).
        # Likewise keys added later (`cold_fusion`, a fusion's `name`, n_models' `min_k` and `within_family`) count
        # only when set away from their defaults.
        skip = {"primary"} if self.primary is None else set()
        if self.leakage == LeakageSettings():
            skip.add("leakage")
        if self.confirmatory == ConfirmatorySettings():  # added later; it decides no job's output either
            skip.add("confirmatory")
        data = self.model_dump(mode="json", exclude=skip or None)
        if self.cold_fusion is None:
            data.pop("cold_fusion", None)
        else:
            data["cold_fusion"] = self.cold_fusion.fingerprint_view()
        if self.selection is None:  # added later; keys of configs written before stay as they were
            data.pop("selection", None)
        if self.evaluation == "finetune":
            data.pop("evaluation", None)
        if self.probe == ProbeConfig():
            data.pop("probe", None)
        fusions = data["fusion"] if isinstance(data["fusion"], list) else [data["fusion"]]
        for f in fusions:
            if f.get("name") is None:
                f.pop("name", None)
        for f in fusions + ([data["cold_fusion"]["fusion"]] if data.get("cold_fusion") else []):
            if not f.get("allow_unrelated"):  # added later too
                f.pop("allow_unrelated", None)
        defaults = NModelsAblation()
        for k in ("min_k", "within_family"):
            if data["n_models"].get(k) == getattr(defaults, k):
                data["n_models"].pop(k)
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _format_validation_error(path: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{path}: unknown key {loc!r}: remove it or check its spelling (see configs/demo.yaml)"
    msg = first["msg"].removeprefix("Value error, ")
    return f"{path}: {loc}: {msg}"


def parse_experiment_config(data: object, origin: str = "<config>") -> ExperimentConfig:
    if not isinstance(data, dict):
        raise BasefuseError(f"{origin}: expected a mapping of keys at the top level")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as e:
        raise BasefuseError(_format_validation_error(origin, e)) from None


def load_experiment_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config; every problem is one line naming the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BasefuseError(f"cannot read config {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise BasefuseError(f"{path}: not UTF-8 text (bad byte at offset {e.start}): save it as UTF-8") from None
    try:
        data = load_strict(text)
    except DuplicateKeyError as e:
        raise BasefuseError(f"{path}: line {e.line}: key {e.key!r} is given twice (first on line {e.first_line}): "
                            "keep one (merge the two lists if both are wanted)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise BasefuseError(f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_experiment_config(data, str(path))


def builtin_config_path(name: str) -> Path:
    """The configs shipped inside the package (`demo`, `paper`)."""
    p = Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"
    if not p.exists():
        raise BasefuseError(f"no built-in config {name!r}")
    return p
