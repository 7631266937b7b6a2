"""One row per target finetune: the contract between the experiment runner and the report."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

PRETRAINED = "pretrained"

#: The condition kinds the planner emits, in the report's display order. A condition is a kind, optionally
#: with the fusion method's name in brackets (`fused[ties]`); the vocabulary is open: a condition not listed
#: here is still a valid record and is shown after these, sorted by name.
CONDITION_ORDER = (PRETRAINED, "fused", "intertrained", "cold")

#: The kinds a config lists under `conditions` (ColD Fusion rows come from its `cold_fusion` key instead).
CONFIG_CONDITIONS = (PRETRAINED, "fused", "intertrained")

#: The source family of a ColD Fusion chain that leaves out the target's whole family (the unseen setting), and
#: of the one-shot fusion over the same pool.
OTHER_FAMILIES = "other families"
#: The source family of the ColD paper's main setting: one chain over every source, the target's own task (its
#: train split, never its test texts) included; rows `cold@T (seen)` and the one-shot `fused (seen)`.
SEEN = "seen"

#: The `evaluation` of a linear probe's row (a row without one was finetuned).
LINEAR_PROBE = "linear_probe"
FINETUNE = "finetune"


def evaluation_of(record: dict | object) -> str:
    """How a row evaluated its base: "finetune" (rows before linear probes existed have no field) or
    "linear_probe"."""
    value = record.get("evaluation") if isinstance(record, dict) else getattr(record, "evaluation", None)
    return value or FINETUNE


#: What each source family that is not a family name holds, for the report's "pool" column.
POOLS = {"all": "all but target", OTHER_FAMILIES: "other families (target's family left out)",
         SEEN: "all sources, target's train split included"}


def condition_kind(condition: str) -> str:
    """The kind of a condition: "fused[ties]" -> "fused"."""
    return condition.split("[", 1)[0]


def condition_name(kind: str, method: str | None = None) -> str:
    """The condition of a base: the kind, plus `[method]` when the method is not the default one (average)."""
    return kind if method in (None, "average") else f"{kind}[{method}]"


GREEDY = "fused[greedy]"  # the greedily selected fused set (selection), not a fusion method of its own


def condition_rank(condition: str) -> tuple:
    """Sort key: the kinds in CONDITION_ORDER ("fused" sorts before "fused[ties]" by name), then the rest by name."""
    kind = condition_kind(condition)
    return (CONDITION_ORDER.index(kind) if kind in CONDITION_ORDER else len(CONDITION_ORDER), condition)


def base_label(condition: str, source_family: str | None = None, iteration: int | None = None) -> str:
    """The base's row label: "pretrained", "fused (all)", "fused[ties] (reviews)", "cold@3 (other families)"."""
    label = condition if iteration is None else f"{condition}@{iteration}"
    if condition == PRETRAINED or source_family is None:
        return label
    return f"{label} ({source_family})"


class RunRecord(BaseModel):
    """The outcome of finetuning one base condition on one target task with one seed.

    `condition` is an open name (see CONDITION_ORDER). `source_family` says which sources built
    the base: a family name, "all" (every source except the target's own), "other families"
    (a ColD Fusion chain that excludes the target's whole family), or None for the pretrained
    base. `iteration` is the ColD Fusion iteration (1..T) of the shared model the target was
    finetuned from, and `method` the fusion method of a fused or ColD base; both None for rows
    written before they existed. `ablation` is "main" for the main grid and "n_models" for the
    number-of-models ablation, where `n_fused` is the number of source models fused.
    `intertrained` rows name the one source model used in `sources`. `chain_seed` is the ColD
    Fusion chain seed of a ColD row and of the one-shot fusion over the chain's pool (None
    elsewhere); "seen" as a source family marks the ColD paper's seen setting (see SEEN).
    """

    model_config = ConfigDict(extra="allow")

    target: str
    target_family: str
    condition: str
    source_family: str | None = None
    sources: list[str] = []
    n_fused: int | None = None
    iteration: int | None = Field(None, ge=1)
    method: str | None = None
    chain_seed: int | None = None
    seed: int
    weight_decay: float = 0.0
    ablation: str = "main"
    accuracy: float
    macro_f1: float
    job_key: str = ""

    @property
    def base_label(self) -> str:
        """Row label in the report tables, e.g. "fused (reviews)", "cold@3 (other families)" or "pretrained"."""
        return base_label(self.condition, self.source_family, self.iteration)
