"""The ranking of candidate bases (`basefuse rank`): per candidate the mean probe (and finetune) accuracy over the
probe tasks, with the report's interval and its n; a Markdown table and a figure. Pure, but for the figure's file.

Each candidate's value on a task is its mean over seeds; the interval is over tasks (n = number of probe tasks),
so below the report's minimum n it is "n/a". These are exploratory numbers: the ranking fixes no test in advance.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from basefuse.reports.stats import MIN_TARGETS, mean_interval


@dataclass(frozen=True)
class Row:
    candidate: str
    probe_mean: float
    probe_interval: tuple[float, float] | None
    n_tasks: int
    n_seeds: int
    finetune_mean: float | None = None
    finetune_interval: tuple[float, float] | None = None
    finetune_n_seeds: int = 0


def _per_task(scores: Mapping[str, Mapping[str, Mapping[str, Any]]], metric: str) -> dict[str, float]:
    """task -> mean over seeds (in points)."""
    return {t: 100 * sum(r[metric] for r in by_seed.values()) / len(by_seed) for t, by_seed in scores.items()
            if by_seed}


def rows(record: Mapping[str, Any], metric: str = "accuracy") -> list[Row]:
    """One row per candidate, in the ranking's order (probe mean, ties by name)."""
    out = []
    for c in record["order"]:
        probe = _per_task(record["probe"][c], metric)
        values = list(probe.values())
        ft = _per_task(record["finetune"].get(c, {}), metric)
        fvalues = list(ft.values())
        out.append(Row(c, sum(values) / len(values), mean_interval(values), len(values),
                       len(record["probe_seeds"]),
                       sum(fvalues) / len(fvalues) if fvalues else None, mean_interval(fvalues) if fvalues else None,
                       len(record["finetune_seeds"]) if fvalues else 0))
    return out


def _ci(interval: tuple[float, float] | None, n: int) -> str:
    if interval is None:
        return f"n/a (n={n}; needs {MIN_TARGETS} tasks)" if n < MIN_TARGETS else f"n/a (n={n}; no spread)"
    return f"[{interval[0]:.2f}, {interval[1]:.2f}] (n={n})"


def table(record: Mapping[str, Any]) -> list[list[str]]:
    header = ["rank", "candidate", "probe accuracy", "95% interval over tasks", "finetune accuracy",
              "95% interval over tasks"]
    body = []
    for i, r in enumerate(rows(record), 1):
        ft = (f"{r.finetune_mean:.2f}", _ci(r.finetune_interval, r.n_tasks)) if r.finetune_mean is not None \
            else ("not finetuned", "")
        body.append([str(i), r.candidate, f"{r.probe_mean:.2f}", _ci(r.probe_interval, r.n_tasks), *ft])
    return [header, *body]


def markdown(record: Mapping[str, Any]) -> str:
    """ranking.md: what was ranked on what, the table, and the greedy selection if one ran."""
    t = table(record)
    lines = ["# Ranking of candidate bases", "",
             f"Base model {record['base_model']}; probe tasks {', '.join(record['probe_tasks'])} (train budget "
             f"{record.get('max_train')}); linear-probe seeds {record['probe_seeds']}; the top {record['top_k']} also "
             f"finetuned with seeds {record['finetune_seeds']}. Accuracy in points: per task the mean over seeds, "
             "then the mean over tasks; intervals over tasks (exploratory: no test was fixed in advance). "
             + record["rule"] + ".", "",
             "| " + " | ".join(t[0]) + " |", "|" + "---|" * len(t[0]),
             *("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in t[1:]), ""]
    on_probe = record.get("trained_on_probe") or []
    if on_probe:
        lines += [f"Trained on a probe task (by name or content): {', '.join(on_probe)}. Their probe scores, and "
                  "those of fused (all), which holds them, are measured on their own training data; they are no "
                  "candidates of the greedy selection.", ""]
    unknown = [p["name"] for p in record.get("pool", []) if p.get("trained_on") == "unknown"]
    if unknown:
        lines += [f"Provenance unknown for {', '.join(unknown)}: a member trained on a probe task is ranked on its "
                  "own training data; declare what each was trained on to rule that out.", ""]
    sel = record.get("selection")
    if sel:
        pool = sel["pools"][0]
        lines += ["## Greedy selection", "", sel["rule"] + ".", "",
                  "| step | candidate tried | set | probe accuracy | kept |", "|---|---|---|---|---|",
                  *(f"| {i} | {s['candidate']} | {'+'.join(s['members'])} | {100 * s['score']:.2f} | "
                    f"{'yes' if s['accepted'] else 'no'} |" for i, s in enumerate(pool["curve"], 1)), "",
                  f"Chosen set: {', '.join(pool['chosen'])}; best single candidate: {pool['best_single']}.", ""]
    return "\n".join(lines)


def figure(record: Mapping[str, Any], path: Path) -> bool:
    """Each candidate's probe (and finetune) mean with its interval over tasks, best on top."""
    from basefuse.reports.plots import _pyplot, _save

    rs = rows(record)
    if not rs:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rs) + 1.4))
    ys = list(range(len(rs)))[::-1]
    labelled: set[str] = set()

    def label(name: str) -> str | None:  # each series named once in the legend
        if name in labelled:
            return None
        labelled.add(name)
        return name

    for y, r in zip(ys, rs):
        ax.plot([r.probe_mean], [y + 0.12], "o", color="tab:blue", label=label("linear probe"))
        if r.probe_interval:
            ax.plot(r.probe_interval, [y + 0.12] * 2, color="tab:blue")
        if r.finetune_mean is not None:
            ax.plot([r.finetune_mean], [y - 0.12], "s", color="tab:orange", label=label("finetune"))
            if r.finetune_interval:
                ax.plot(r.finetune_interval, [y - 0.12] * 2, color="tab:orange")
    ax.set_yticks(ys)
    ax.set_yticklabels([r.candidate for r in rs])
    ax.set_xlabel(f"accuracy (points), mean over {rs[0].n_tasks} probe tasks; bars: 95% interval over tasks")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Candidate bases, best first")
    return _save(fig, path)
