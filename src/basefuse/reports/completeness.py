"""What was planned against what finished: the first table of every report (pure).

A planned run and a finished record are the same cell when they agree on target, condition,
source family, ColD Fusion iteration and chain seed, seed, weight decay, ablation and number of models
fused (and, in the number-of-models ablation, on the subset). Conditions are open names: a condition
the report has never heard of is counted like any other. Job keys are not compared, so a plan
rebuilt from `experiment.yaml` without the task data still matches.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from basefuse.experiments.records import SEEN, RunRecord, base_label


def cell(fields: Mapping[str, Any]) -> tuple:
    ablation = fields.get("ablation", "main")
    return (fields["target"], fields["condition"], fields.get("source_family"), fields.get("iteration"),
            int(fields["seed"]), float(fields.get("weight_decay", 0.0)), ablation, fields.get("n_fused"),
            tuple(fields.get("sources") or ()) if ablation != "main" else (), fields.get("chain_seed"))


def group_of(fields: Mapping[str, Any]) -> str:
    """A table row: the condition (a ColD Fusion iteration apart, e.g. "cold@2", and the seen setting, e.g.
    "cold@2 (seen)"), with the number-of-models ablation apart."""
    ablation = fields.get("ablation", "main")
    condition = base_label(fields["condition"], None, fields.get("iteration"))
    if fields.get("source_family") == SEEN:
        condition += f" ({SEEN})"
    return condition if ablation == "main" else f"{condition} ({ablation} ablation)"


@dataclass
class Completeness:
    planned: dict[str, int]    # group -> planned runs
    finished: dict[str, int]   # group -> finished runs that match a planned cell
    excluded: dict[str, int]   # group -> finished runs left out by the report's filters
    plan_source: str           # where the plan came from ("plan.json", "rebuilt from experiment.yaml", ...)
    unplanned: int = 0         # finished records matching no planned cell
    reproduced: dict[str, int] = field(default_factory=dict)  # input job label -> times produced (> 1)
    failures: list[str] = field(default_factory=list)

    @property
    def n_planned(self) -> int:
        return sum(self.planned.values())

    @property
    def n_finished(self) -> int:
        return sum(self.finished.values())

    @property
    def partial(self) -> bool:
        return self.n_finished < self.n_planned


def completeness(planned: Sequence[Mapping[str, Any]], finished: Iterable[RunRecord],
                 excluded: Iterable[RunRecord] = (), *, plan_source: str,
                 store_rows: Iterable[Mapping[str, Any]] = (), failures: Sequence[str] = ()) -> Completeness:
    """Count planned and finished runs per group; name inputs produced more than once."""
    todo = Counter(cell(p) for p in planned)
    planned_by = Counter(group_of(p) for p in planned)
    finished_by: Counter = Counter()
    unplanned = 0
    for r in finished:
        c = cell(r.model_dump())
        if todo[c] > 0:
            todo[c] -= 1
            finished_by[group_of(r.model_dump())] += 1
        else:
            unplanned += 1
    excluded_by = Counter(group_of(r.model_dump()) for r in excluded)
    return Completeness(dict(planned_by), {g: finished_by.get(g, 0) for g in planned_by}, dict(excluded_by),
                        plan_source, unplanned if planned else 0, reproduced_inputs(store_rows), list(failures))


def reproduced_inputs(store_rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Source finetunes and fusions recorded more than once in the store (each row is one production: e.g. a
    source retrained in another device call, under the same key or a new one), so the target runs built on
    them do not all share one input. Target runs are not counted: their labels are shared across bases."""
    times: Counter = Counter()
    for row in store_rows:
        label = str(row.get("label", ""))
        if label.startswith(("source ", "fuse ")):
            times[label] += 1
    return {label: n for label, n in sorted(times.items()) if n > 1}
