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
    rho: float | None  # accuracies; None below 3 cells or with no spread
    n: int  # (base, target) cells with both evaluations
    rho_gain: float | None = None  # gains over pretrained in the same target (bases other than pretrained)
    n_gain: int = 0


def _cells(records: Iterable, evaluation: str, weight_decay: float) -> dict[tuple[str, str], float]:
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in records:
        if evaluation_of(r) == evaluation and r.ablation == "main" and r.weight_decay == weight_decay:
            acc[(r.base_label, r.target)].append(100 * r.accuracy)
    return {k: sum(v) / len(v) for k, v in acc.items()}


def _rho(x: list[float], y: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def _gains(cells: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    return {k: v - cells[("pretrained", k[1])] for k, v in cells.items()
            if k[0] != "pretrained" and ("pretrained", k[1]) in cells}


def agreement(records: list, weight_decay: float) -> Agreement:
    """Spearman's rho between the finetune and the probe evaluation: of every (base, target) cell's accuracy (much
    of which is how hard each target is), and of each base's gain over pretrained on the same target (what a
    ranking of bases needs)."""
    a, b = _cells(records, FINETUNE, weight_decay), _cells(records, LINEAR_PROBE, weight_decay)
    both = sorted(set(a) & set(b))
    ga, gb = _gains(a), _gains(b)
    gboth = sorted(set(ga) & set(gb))
    return Agreement(_rho([a[k] for k in both], [b[k] for k in both]), len(both),
                     _rho([ga[k] for k in gboth], [gb[k] for k in gboth]), len(gboth))


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
        text += (f" Agreement of the two (exploratory), Spearman's rank correlation over (base, target) cells, each "
                 f"the mean over seeds at weight decay {weight_decay:g}: of accuracies {_fmt(ag.rho)} (n = {ag.n} "
                 f"cells; much of it is how hard each target is), of gains over pretrained {_fmt(ag.rho_gain)} "
                 f"(n = {ag.n_gain} cells).")
    return text


def _fmt(rho: float | None) -> str:
    return "n/a (fewer than 3 cells, or no spread)" if rho is None else f"{rho:+.2f}"
