"""Two evaluations of the same bases (`evaluation: both`): finetuning and a linear probe. The report's tables are
made for one evaluation at a time; this says which one, and how far the two agree: Spearman's rank correlation over
(base, target) cells, each the mean over seeds. Exploratory: no test of it was fixed in advance."""
from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from basefuse.experiments.records import FINETUNE, LINEAR_PROBE, evaluation_of

NAMES = {FINETUNE: "finetuning", LINEAR_PROBE: "linear probe"}


def evaluations_in(records: Iterable) -> list[str]:
    """The evaluations present, finetuning first (the primary one when both are)."""
    found = {evaluation_of(r) for r in records}
    return sorted(found, key=lambda e: (e != FINETUNE, e))


def report_folder(evaluation: str, primary: str) -> str:
    """The primary evaluation's report is RUN/report; another's RUN/report-<evaluation>."""
    return "report" if evaluation == primary else f"report-{evaluation}"


@dataclass(frozen=True)
class Agreement:
    rho: float | None  # None below 3 cells or with no spread
    n: int  # (base, target) cells with both evaluations


def _cells(records: Iterable, evaluation: str, weight_decay: float) -> dict[tuple[str, str], float]:
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in records:
        if evaluation_of(r) == evaluation and r.ablation == "main" and r.weight_decay == weight_decay:
            acc[(r.base_label, r.target)].append(100 * r.accuracy)
    return {k: sum(v) / len(v) for k, v in acc.items()}


def agreement(records: list, weight_decay: float) -> Agreement:
    """Spearman's rho between the finetune and the probe accuracy of every (base, target) cell with both."""
    from scipy.stats import spearmanr

    a, b = _cells(records, FINETUNE, weight_decay), _cells(records, LINEAR_PROBE, weight_decay)
    both = sorted(set(a) & set(b))
    x, y = [a[k] for k in both], [b[k] for k in both]
    if len(both) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return Agreement(None, len(both))
    return Agreement(float(spearmanr(x, y).statistic), len(both))


def section_markdown(shown: str, others: list[str], records: list, weight_decay: float) -> str:
    lines = ["## Evaluations", "", _sentence(shown, others, records, weight_decay), ""]
    return "\n".join(lines) + "\n"


def section_html(shown: str, others: list[str], records: list, weight_decay: float) -> str:
    return f"<h2>Evaluations</h2><p>{html.escape(_sentence(shown, others, records, weight_decay))}</p>\n"


def _sentence(shown: str, others: list[str], records: list, weight_decay: float) -> str:
    text = (f"Every table and figure of this report is of the {NAMES.get(shown, shown)} evaluation. "
            + " ".join(f"The {NAMES.get(o, o)} evaluation of the same bases has its own report in "
                       f"{report_folder(o, FINETUNE)}/." for o in others))
    if {FINETUNE, LINEAR_PROBE} <= {shown, *others}:
        ag = agreement(records, weight_decay)
        rho = "n/a (fewer than 3 cells, or no spread)" if ag.rho is None else f"{ag.rho:+.2f}"
        text += (f" Agreement of the two (exploratory): Spearman's rank correlation over (base, target) cells, each "
                 f"the mean accuracy over seeds at weight decay {weight_decay:g}: {rho} (n = {ag.n} cells).")
    return text
