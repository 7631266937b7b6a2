"""The confirmatory plan's results: one record per paper claim (C1-C5), as the report, its figures and
`results` files show them. Built by `summary`; drawn by `plots`; rendered by `render`.

A claim is tested once, with Holm's adjustment over the five claims only; every other comparison in the report is
exploratory (an interval, no verdict word).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

NOT_MEASURED = "not measured"


@dataclass
class Claim:
    id: str  # "C1" .. "C5": the numbering never jumps; a claim the run cannot address has verdict NOT_MEASURED
    title: str  # e.g. "fused vs pretrained"
    paper: str  # the paper's claim in words (../shared/PAPER.md)
    a: str  # compared labels, e.g. "fused (all)" and "pretrained"
    b: str
    measure: str  # what `values` hold, e.g. "gain (points)", "log seed-std ratio"
    scale: Literal["points", "ratio"]  # how `estimate`/`interval` read: points, or a ratio (1 = no difference)
    # target -> the value the test is over (log for C5's ratio); C3: fused's per-target gain in points, the values
    # whose spread C3 compares (its figure draws the estimate and interval only)
    values: dict[str, float] = field(default_factory=dict)
    estimate: float | None = None  # on `scale`
    interval: tuple[float, float] | None = None  # on `scale`; None where no interval may be printed
    n: int = 0  # targets the test is over
    seeds: tuple[int, int] = (0, 0)  # fewest and most seeds per target
    p: float | None = None
    p_holm: float | None = None
    verdict: str = NOT_MEASURED  # "better" | "worse" | "inconclusive" | NOT_MEASURED (from the interval and p_holm)
    reason: str | None = None  # why not measured, or why no verdict is reachable at this n
    reachable: bool = False  # can the planned n reach p_holm < alpha at all
    effect_size: float | None = None  # standardised (d_z) where it applies
    detectable_planned: float | None = None  # smallest effect detectable at 80% power from the config's assumed SD
    detectable_observed: float | None = None  # the same from the observed SD
    method: str = ""  # the interval/test used and its assumptions, one sentence
