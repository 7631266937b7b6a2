"""Turn a `Summary` into tables, a headline, Markdown, self-contained HTML, CSV and JSON."""
from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from basefuse.experiments.records import RunRecord
from basefuse.reports import stats
from basefuse.reports.completeness import Completeness
from basefuse.reports.stats import Estimate
from basefuse.reports.summary import Comparison, Summary


@dataclass
class TableModel:
    """A table as formatted strings, shared by the Markdown, HTML and terminal renderers."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Figure:
    title: str
    path: Path


@dataclass
class ReportInputs:
    summary: Summary
    figures: list[Figure] = field(default_factory=list)
    config_text: str | None = None
    notes: list[str] = field(default_factory=list)
    run_dir: str = ""
    completeness: Completeness | None = None


def _acc(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _gain(x: float | None) -> str:
    return "–" if x is None else f"{round(x, 2) or 0.0:+.2f}"  # no "-0.00"


def _p(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}" if x >= 0.001 else "<0.001"


def _seeds(seeds: tuple[int, int]) -> str:
    lo, hi = seeds
    return f"{lo} seed{'s' if hi != 1 else ''}" if lo == hi else f"{lo}–{hi} seeds"


def interval_text(interval: tuple[float, float] | None, n: int, signed: bool = True) -> str:
    """"[lo, hi]", "n/a (n=2)" below the minimum number of targets, "n/a (all equal, n=3)" without spread."""
    if interval is None:
        return f"n/a (n={n})" if n < stats.MIN_TARGETS else f"n/a (all equal, n={n})"
    f = _gain if signed else _acc
    lo, hi = f(interval[0]), f(interval[1])
    if lo == hi:  # a narrow interval must not read as zero-width once rounded
        lo, hi = (f"{v:+.4f}" if signed else f"{v:.4f}" for v in interval)
    return f"[{lo}, {hi}]"


def n_text(est: Estimate) -> str:
    return f"{est.n_targets} target{'s' if est.n_targets != 1 else ''}, {_seeds(est.seeds)}"


def comparison_cells(c: Comparison) -> list[str]:
    e = c.est
    return [_gain(e.mean), interval_text(e.interval, e.n_targets), n_text(e), _p(e.p),
            "(primary)" if c.primary else _p(e.p_holm), c.verdict]


COMPARISON_HEADER = ["mean", "95% CI", "n", "p", "p (Holm)", "verdict"]


def completeness_table(c: Completeness) -> TableModel:
    rows = [[g, str(c.planned[g]), str(c.finished.get(g, 0)), str(c.planned[g] - c.finished.get(g, 0)),
             str(c.excluded.get(g, 0))] for g in c.planned]
    rows += [[g, "–", "–", "–", str(n)] for g, n in c.excluded.items() if g not in c.planned]
    rows.append(["all", str(c.n_planned), str(c.n_finished), str(c.n_planned - c.n_finished),
                 str(sum(c.excluded.values()))])
    note = f"Plan: {c.plan_source}. Finished: runs in results.jsonl matching a planned run."
    if c.excluded:
        note += " Excluded: finished runs the report was told to leave out (--exclude); they are in no other table."
    if c.unplanned:
        note += f" {c.unplanned} finished run(s) match no planned run."
    return TableModel("Planned vs finished runs", ["condition", "planned", "finished", "missing", "excluded"], rows,
                      note)


def table1(summary: Summary) -> TableModel:
    """The paper's Table 1: mean accuracy per base label and target family."""
    rows = [[lab, *(_acc(summary.table1[lab][f]) for f in summary.families), _acc(summary.table1[lab]["mean"])]
            for lab in summary.labels]
    return TableModel(f"Table 1: accuracy (points) by target family, weight decay {summary.weight_decay:g}",
                      ["base", *summary.families, "mean"], rows,
                      "Mean over targets of the mean over seeds (main grid); a row that covers only some targets has no "
                      "overall mean (it would not be comparable with pretrained's).")


def _comparison_table(title: str, rows: list[Comparison], note: str) -> TableModel:
    return TableModel(title, ["comparison", *COMPARISON_HEADER], [[c.name, *comparison_cells(c)] for c in rows], note)


def gain_table(summary: Summary) -> TableModel:
    return _comparison_table(
        f"Claim 1 — gain over pretrained (points, weight decay {summary.weight_decay:g})", summary.vs_pretrained,
        "Paired per target and seed; mean over targets of the per-target mean gain; t-interval over targets; "
        "p: exact sign-flip test over targets; secondary comparisons Holm-adjusted over every secondary row of "
        "the report.")


def per_target_table(summary: Summary) -> TableModel:
    rows = []
    for c in summary.vs_pretrained:
        rows.append([c.a, *(f"{_gain(c.per_target[t].mean)} ({_seeds(c.per_target[t].seeds)}: "
                            f"{c.target_verdict(t).replace('too few seeds', 'too few')})"
                            if t in c.per_target else "–" for t in summary.targets)])
    return TableModel("Gain over pretrained per target (points, verdict, seeds)", ["base", *summary.targets], rows,
                      f"A per-target verdict uses the t-interval and t-test over seeds and needs at least "
                      f"{stats.MIN_SEEDS} seeds; with fewer it is 'too few seeds'. Not adjusted for multiplicity.")


def intertrained_table(summary: Summary) -> TableModel:
    return _comparison_table("Claim 2 — fused vs intertrained (points)", summary.vs_intertrained,
                             "Fused minus intertrained, paired per target and seed.")


def spread_table(summary: Summary) -> TableModel:
    rows = [[s.label, f"{s.n_targets} ({_seeds(s.seeds)})", _acc(s.std), interval_text(s.interval, s.n_targets, signed=False),
             f"{s.helped} of {s.n_targets}", "too few seeds" if s.better is None else f"{s.better} of {s.n_targets}"]
            for s in summary.spread]
    return TableModel("Claim 3 — dependence on the target (spread of per-target gains)",
                      ["base", "targets (seeds)", "std across targets", "95% CI", "mean gain > 0", "verdict better"],
                      rows,
                      "Std (ddof=1) of the per-target mean gains over pretrained; chi-square interval (assumes normal "
                      "per-target gains; sensitive to outlying targets). Lower: the gain depends less on the target.")


def weight_decay_table(summary: Summary) -> TableModel:
    wds = summary.weight_decays
    rows = []
    for w in summary.weight_decay_rows:
        cells = []
        for wd in wds:
            c = w.gains.get(wd)
            cells.append("–" if c is None else
                         f"{_gain(c.est.mean)} {interval_text(c.est.interval, c.est.n_targets)} ({n_text(c.est)})")
        d = w.difference
        cells += ["–"] * 4 if d is None else [f"{_gain(d.est.mean)} {interval_text(d.est.interval, d.est.n_targets)}",
                                              n_text(d.est), _p(d.est.p_holm), d.verdict]
        rows.append([w.label, *cells])
    return TableModel("Claim 4 (the paper's Table 2) — weight decay: gain over pretrained at each weight decay, "
                      "and the difference",
                      ["base", *(f"gain, wd={w:g}" for w in wds), f"wd {wds[-1]:g} − wd {wds[0]:g}", "n",
                       "p (Holm)", "verdict"], rows,
                      "Each gain is paired with pretrained at the same weight decay; the difference is paired per "
                      "target and seed. The paper: intertraining's gain vanishes under weight decay, fusion's "
                      "does not.")


STD_VERDICT = {stats.BETTER: "higher std", stats.WORSE: "lower std"}  # a difference of stds: above 0 is worse


def seed_std_table(summary: Summary) -> TableModel:
    rows = []
    for s in summary.seed_std:
        if s.difference is None:
            rows.append([s.label, "0", "–", "–", "–", "–", "–", "–"])
            continue
        d = s.difference
        rows.append([s.label, f"{s.n_targets} ({_seeds(s.seeds)})",
                     f"{_acc(s.std)} {interval_text(s.interval, s.n_targets, signed=False)}",
                     f"{_acc(s.reference_std)} {interval_text(s.reference_interval, s.n_targets, signed=False)}",
                     f"{_gain(d.est.mean)} {interval_text(d.est.interval, d.est.n_targets)}", _p(d.est.p),
                     _p(d.est.p_holm), STD_VERDICT.get(d.verdict, d.verdict)])
    return TableModel("Claim 5 (the paper's Table 3) — seed sensitivity: std of accuracy over seeds, over the same "
                      "targets",
                      ["base", "targets (seeds)", "seed std [95% CI]", "pretrained, same targets", "difference",
                       "p", "p (Holm)", "verdict"], rows,
                      f"Per target, std (ddof=1) over the seeds both bases ran (targets with >= 2 such seeds), "
                      f"averaged; CI: percentile bootstrap over targets ({summary.n_boot} resamples, seed "
                      f"{summary.seed}). Difference: base − pretrained, t-interval and sign-flip test over targets; "
                      f"negative: the base is less sensitive to the seed than pretrained.")


def n_models_table(summary: Summary) -> TableModel:
    rows = [[p.condition, str(p.n_fused), *comparison_cells(p.gain)[:5],
             str(p.subsets[0]) if p.subsets[0] == p.subsets[1] else f"{p.subsets[0]}–{p.subsets[1]}", str(p.n_runs)]
            for p in summary.n_models]
    return TableModel("Number of models fused: gain over pretrained",
                      ["base", "models fused", *COMPARISON_HEADER[:5], "subsets per target", "runs"], rows,
                      "Random subsets of the sources (leave-one-out); per target the mean over subsets and seeds; "
                      "each fusion method is its own curve.")


COLD_SETTINGS = {
    "unseen": "unseen (no target contributed to its chain)",
    "seen": "seen (every source contributed, the target's own train split included; never its test texts: the "
            "ColD paper's main setting)",
}


def _chain_seeds_text(chain_seeds: tuple[int, int]) -> str:
    lo, hi = chain_seeds
    return f"{lo} chain seed{'s' if hi != 1 else ''}" if lo == hi else f"{lo}–{hi} chain seeds"


def cold_tables(summary: Summary) -> list[TableModel]:
    """Per ColD Fusion chain, unseen chains first, then seen ones: the gain over pretrained of one-shot fusion over
    the chain's pool and of every iteration, and each iteration beside that one-shot fusion."""
    tables = []
    for chain in (c for c in summary.cold if c.iterations):
        setting = COLD_SETTINGS.get(chain.setting, chain.setting)
        seeds = ", ".join(map(str, chain.chain_seeds)) or "not recorded (runs made before chain seeds)"
        shot = [[f"{chain.one_shot} (one-shot)", chain.pool, *comparison_cells(chain.one_shot_gain)]] \
            if chain.one_shot_gain else []
        rows = shot + [[c.a, chain.pool, *comparison_cells(c)] for c in chain.iterations.values()]
        missing = ("" if chain.beside else f" No one-shot fusion over the same pool ({chain.one_shot}) shares a "
                   "(target, seed) cell with these iterations and pretrained (runs planned before it was, or none "
                   "finished): no comparison with it.")
        tables.append(TableModel(
            f"ColD Fusion, {chain.setting}: gain over pretrained per iteration, {chain.label} (points, weight decay "
            f"{summary.weight_decay:g})", ["base", "pool", *COMPARISON_HEADER], rows,
            f"Setting: {setting}. Iteration t: targets finetuned from the shared model after t rounds of finetuning "
            "the contributors from the previous shared model and fusing them (Don-Yehiya et al. 2023); one-shot: "
            "the same method fusing every source of the same pool once. The rows of the gain-over-pretrained table, "
            f"paired per target and seed; each over the targets it has (see n). Chain seeds: {seeds}; the whole "
            "chain (its draws and its contributors' finetune seeds) is rerun per chain seed and a (target, seed) "
            "cell is the mean over them, so the per-target means include the chain's own variance; n counts "
            "targets and target seeds. The targets of a family share their chains, so with few chain seeds the "
            "interval treats as independent what one chain draw moved together." + missing))
        if not chain.beside:
            continue
        cells = []
        for t, b in chain.beside.items():
            d, tested = b.difference.est, b.difference is chain.tested
            cells.append([str(t), chain.pool, _gain(b.iteration_gain.est.mean), _gain(b.one_shot_gain.est.mean),
                          _gain(d.mean), interval_text(d.interval, d.n_targets),
                          f"{n_text(d)}, {_chain_seeds_text(b.chain_seeds)}",
                          _p(d.p) if tested else "–", _p(d.p_holm) if tested else "–",
                          b.difference.verdict if tested else "–"])
        tables.append(TableModel(
            f"ColD Fusion, {chain.setting}: each iteration of {chain.label} beside one-shot fusion over the same "
            f"pool ({chain.one_shot}), same targets, seeds and chain seeds (points)",
            ["iteration", "pool", "iteration gain", "one-shot gain", "iteration − one-shot", "95% CI", "n", "p",
             "p (Holm)", "verdict"], cells,
            f"Setting: {setting}. Per row, both gains over pretrained and their paired difference over the (target, "
            "seed) cells that the iteration, the one-shot fusion and pretrained all have, each cell the mean over the "
            "chain seeds both have there. With every source of the pool contributing, iteration 1 is the one-shot "
            "fusion itself (the same jobs), so its difference is 0. Only the last iteration's difference is tested "
            "(Holm-adjusted with the other secondary rows: does iterating add to fusing once?); the other rows are "
            "shown for reading."))
    return tables


def all_tables(summary: Summary, comp: Completeness | None = None) -> list[TableModel]:
    tables = ([completeness_table(comp)] if comp else []) + [table1(summary), gain_table(summary),
                                                              per_target_table(summary)]
    if summary.vs_intertrained:
        tables.append(intertrained_table(summary))
    if summary.spread:
        tables.append(spread_table(summary))
    if summary.weight_decay_rows:
        tables.append(weight_decay_table(summary))
    if summary.seed_std:
        tables.append(seed_std_table(summary))
    if summary.n_models:
        tables.append(n_models_table(summary))
    tables += cold_tables(summary)
    return tables


def headline(summary: Summary, comp: Completeness | None = None) -> str:
    """The primary comparison (fixed before the data), prefixed by "partial: X of Y runs" when runs are missing."""
    prefix = f"Partial: {comp.n_finished} of {comp.n_planned} planned runs finished. " if comp and comp.partial else ""
    a, b = summary.primary
    c = summary.primary_comparison
    if c is None or c.est is None:
        text = f"{prefix}Primary comparison {a} vs {b}: no paired runs, nothing to conclude."
        missing = [lab for lab in (a, b) if lab not in summary.labels]
        if missing:
            text += (f" The runs have no {' and no '.join(repr(m) for m in missing)} rows (bases with rows: "
                     f"{', '.join(summary.labels)}); the primary comparison is fixed before the data, so no other "
                     "base takes its place (name one with `primary` in the config).")
        return text
    e = c.est
    text = (f"{prefix}Primary comparison (fixed before the data), {a} vs {b}: {_gain(e.mean)} points, 95% CI "
            f"{interval_text(e.interval, e.n_targets)} ({n_text(e)}), sign-flip p = {_p(e.p)}: {c.verdict}.")
    if e.interval is not None and stats.smallest_p(e.n_targets) >= stats.ALPHA:
        text += (f" With {e.n_targets} targets the exact test cannot go below p = {stats.smallest_p(e.n_targets):.3f}, "
                 f"so no verdict other than inconclusive is possible.")
    return text


HOW_TO_READ = [
    "Gain: a base's target accuracy minus the pretrained model's accuracy on the same target, seed and weight "
    "decay (accuracy points, i.e. percent). Positive means the base helped.",
    "n: the number of targets (the unit the claims generalise over) and of seeds per target. Each target counts "
    "once, with its mean over seeds.",
    f"95% CI: Student-t interval over the per-target means (printed only from {stats.MIN_TARGETS} targets up; "
    "'n/a (n=2)' below). p: exact two-sided sign-flip permutation test over the per-target means (all 2^n sign "
    f"patterns up to {stats.EXACT_MAX} targets, {stats.MC_FLIPS:,} random ones seeded by --seed beyond); with n "
    "targets it cannot go below 2/2^n.",
    "Verdict: 'better' only if the CI lies above 0 and p (Holm-adjusted for secondary comparisons) is below 0.05; "
    "'worse' mirrored; otherwise 'inconclusive', which means the data cannot tell, not that the bases are equal.",
    "Primary comparison: fixed before the data (fused (all) vs pretrained unless the config names `primary`); "
    "every other row is secondary and its p-value is Holm-adjusted over all secondary rows of this report.",
]


def _md_table(t: TableModel) -> str:
    esc = lambda c: c.replace("|", "\\|")  # noqa: E731
    lines = [f"### {t.title}", "", "| " + " | ".join(map(esc, t.header)) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(t.header) - 1)) + "|"]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in t.rows]
    if t.note:
        lines += ["", f"_{t.note}_"]
    return "\n".join(lines)


def render_markdown(inp: ReportInputs) -> str:
    s = inp.summary
    parts = ["# basefuse report", "", f"Run directory: `{inp.run_dir}`", "",
             f"**{headline(s, inp.completeness)}**", ""]
    parts += ["", *(_md_table(t) + "\n" for t in all_tables(s, inp.completeness))]
    parts += [f"### {f.title}\n\n![{f.title}]({f.path.name})\n" for f in inp.figures]
    parts += ["## How to read this", "", *(f"- {p}" for p in HOW_TO_READ), ""]
    if inp.notes:
        parts += ["## Data notes", "", *(f"- {n}" for n in inp.notes), ""]
    if inp.config_text is not None:
        parts += ["<details><summary>experiment.yaml</summary>", "", "```yaml", inp.config_text.rstrip(), "```",
                  "", "</details>", ""]
    return "\n".join(parts)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}.headline{font-size:1.2em}
.note{color:#666;font-size:.9em}img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto}"""


def _html_table(t: TableModel) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in t.header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    note = f'<p class="note">{e(t.note)}</p>' if t.note else ""
    return f"<h3>{e(t.title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def render_html(inp: ReportInputs) -> str:
    """A single file: CSS inline, figures embedded as base64 PNG, no external references."""
    e, s = html.escape, inp.summary
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>basefuse report</title>",
           f"<style>{CSS}</style></head><body><h1>basefuse report</h1>",
           f'<p class="note">Run directory: <code>{e(inp.run_dir)}</code></p>',
           f'<p class="headline"><strong>{e(headline(s, inp.completeness))}</strong></p>',
           *(_html_table(t) for t in all_tables(s, inp.completeness))]
    for f in inp.figures:
        data = base64.b64encode(f.path.read_bytes()).decode("ascii")
        out.append(f'<h3>{e(f.title)}</h3><img alt="{e(f.title)}" src="data:image/png;base64,{data}">')
    out += ["<h2>How to read this</h2><ul>", *(f"<li>{e(p)}</li>" for p in HOW_TO_READ), "</ul>"]
    if inp.notes:
        out += ["<h2>Data notes</h2><ul>", *(f"<li>{e(n)}</li>" for n in inp.notes), "</ul>"]
    if inp.config_text is not None:
        out.append(f"<details><summary>experiment.yaml</summary><pre>{e(inp.config_text)}</pre></details>")
    out.append("</body></html>\n")
    return "\n".join(out)


def _rows(records: Sequence[RunRecord]) -> list[dict]:
    return [r.model_dump(mode="json") for r in records]


def render_csv(records: Sequence[RunRecord]) -> str:
    """Every run, one row each; list fields joined with ';'. Accuracy stays a fraction as recorded."""
    rows = _rows(records)
    fields = list(RunRecord.model_fields)
    fields += sorted({k for r in rows for k in r} - set(fields))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ";".join(map(str, v)) if isinstance(v, list) else
                    json.dumps(v) if isinstance(v, dict) else v for k, v in r.items()})
    return buf.getvalue()


def runs_json(records: Sequence[RunRecord]) -> list[dict]:
    return _rows(records)
