"""Turn a `Summary` into tables, a headline, Markdown, self-contained HTML, CSV and JSON."""
from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from basefuse.experiments.records import RunRecord
from basefuse.reports import stats
from basefuse.reports.claims import NOT_MEASURED, Claim
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
    """A PNG of the report with the caption the page prints under it (what its marks mean)."""

    title: str
    path: Path
    caption: str = ""


@dataclass
class ReportInputs:
    summary: Summary
    figures: list[Figure] = field(default_factory=list)
    config_text: str | None = None
    notes: list[str] = field(default_factory=list)
    run_dir: str = ""
    completeness: Completeness | None = None
    results_link: str = "results.jsonl"  # the raw per-run records, relative to the report folder


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


def _dz(x: float | None) -> str:
    return "–" if x is None else f"{x:+.2f}"


def comparison_cells(c: Comparison) -> list[str]:
    """An exploratory row: mean, interval, n and standardised effect d_z; no p-value, no verdict word."""
    e = c.est
    return [_gain(e.mean), interval_text(e.interval, e.n_targets), n_text(e), _dz(e.effect_size)]


COMPARISON_HEADER = ["mean", "95% CI", "n", "d_z"]
EXPLORATORY = ("Exploratory: an interval and an effect size (d_z = mean / SD of the per-target values), no verdict; "
               "only the confirmatory claims C1-C5 are tested.")


# ---- the confirmatory claims ----------------------------------------------------------------------

def _on_scale(c: Claim, x: float | None) -> str:
    if x is None:
        return "–"
    if c.scale != "ratio":
        return _gain(x)
    return f"{x:.2f}" if 0.01 <= x < 100 else f"{x:.2g}"  # 3.7e-05 is not "0.00"


def claim_interval(c: Claim) -> str:
    if c.interval is None:
        return "–" if c.verdict == NOT_MEASURED else f"n/a (n={c.n})"
    return f"[{_on_scale(c, c.interval[0])}, {_on_scale(c, c.interval[1])}]"


VERDICT_WORDS = {"C3": {stats.BETTER: "better (less dependent)", stats.WORSE: "worse (more dependent)"},
                 "C5": {stats.BETTER: "better (lower seed std)", stats.WORSE: "worse (higher seed std)"}}


def claim_verdict_text(c: Claim) -> str:
    if c.verdict == NOT_MEASURED:
        return c.reason or NOT_MEASURED
    if not c.reachable:
        return f"{c.reason}"
    return VERDICT_WORDS.get(c.id, {}).get(c.verdict, c.verdict)


def claim_detectable(c: Claim) -> str:
    """Planned (the config's assumed SD) / observed (the data's SD) smallest effect found with 80% power."""
    if c.verdict == NOT_MEASURED:
        return "–"
    return f"{_on_scale(c, c.detectable_planned)} / {_on_scale(c, c.detectable_observed)}"


def claims_table(summary: Summary) -> TableModel:
    rows = [[f"{c.id} {c.title}", f"{c.a} vs {c.b}", c.measure, _on_scale(c, c.estimate), claim_interval(c),
             "–" if c.verdict == NOT_MEASURED else f"{c.n} target{'s' if c.n != 1 else ''}, {_seeds(c.seeds)}",
             _dz(c.effect_size), _p(c.p), _p(c.p_holm), claim_verdict_text(c), claim_detectable(c)]
            for c in summary.claims]
    conf = summary.confirmatory
    declared = bool(conf and conf.plan.declared)
    note = (("The confirmatory plan, named in the config before the run (key `confirmatory`)" if declared else
             "The confirmatory plan: the defaults, since this run's config names none (key `confirmatory`), so it "
             "was not declared before the data") + "; Holm's adjustment over the measured claims of these five "
            "only. 'better' is the paper's direction: a mean above 0 (points), a ratio below 1 (C3, C5). "
            "Detectable: the smallest true effect found with 80% power at level "
            f"{conf.plan.alpha if conf else stats.ALPHA:g} (Holm's last step; an upper bound on power), from the "
            f"config's assumed SD over targets ({conf.plan.assumed_target_sd if conf else '–'} points; C5: the SD of "
            "a log std ratio with that many seeds) / from the observed SD.")
    if conf and conf.c3_noise and any(c.id == "C3" and c.verdict != NOT_MEASURED for c in conf.claims):
        f, i = conf.c3_noise
        note += (f" C3 reference (descriptive): seed noise alone would give the per-target mean gains an SD of about "
                 f"{_acc(f)} (fused) and {_acc(i)} (intertrained) points.")
    return TableModel("Confirmatory claims (C1-C5)",
                      ["claim", "comparison", "measure", "estimate",
                       f"{100 * (1 - (conf.plan.alpha if conf else stats.ALPHA)):g}% CI", "n", "d_z", "p", "p (Holm)",
                       "verdict", "detectable (planned / observed)"], rows, note)


def claims_terminal_table(summary: Summary) -> TableModel:
    """The claims table narrowed for a terminal: the columns a verdict rests on."""
    t = claims_table(summary)
    keep = [0, 3, 4, 5, 8, 9]
    return TableModel(t.title, [t.header[i] for i in keep], [[r[i] for i in keep] for r in t.rows])


def claim_methods(summary: Summary) -> list[str]:
    """One line per claim: the paper's claim (docs: ../shared/PAPER.md) and the test with its assumptions."""
    out = []
    for c in summary.claims:
        line = f"{c.id} {c.title}: the paper: {c.paper} Test: {c.method}."
        if c.verdict != NOT_MEASURED and c.reason:
            line += f" Reachability at n = {c.n}: {c.reason}."
        out.append(line)
    return out


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
        f"Exploratory — gain over pretrained (accuracy points, weight decay {summary.weight_decay:g})",
        summary.vs_pretrained,
        "Paired per target and seed; mean over targets of the per-target mean gain; interval: hull of the Student-t "
        "and Hall intervals over targets. " + EXPLORATORY)


def gain_table_f1(summary: Summary) -> TableModel:
    return _comparison_table(
        f"Exploratory — gain over pretrained (macro-F1 points, weight decay {summary.weight_decay:g})",
        summary.vs_pretrained_f1, "As the accuracy table, on each run's macro-F1 (imbalanced targets such as "
        "sms_spam differ most). " + EXPLORATORY)


def per_target_table(summary: Summary) -> TableModel:
    rows = []
    for c in summary.vs_pretrained:
        cells = []
        for t in summary.targets:
            e = c.per_target.get(t)
            if e is None:
                cells.append("–")
            elif e.seeds[0] >= stats.MIN_SEEDS and e.interval is not None:
                cells.append(f"{_gain(e.mean)} {interval_text(e.interval, e.seeds[0])}")
            else:
                cells.append(f"{_gain(e.mean)} ({_seeds(e.seeds)})")
        rows.append([c.a, *cells])
    return TableModel("Exploratory — gain over pretrained per target (points)", ["base", *summary.targets], rows,
                      f"Mean over seeds; a t-interval over seeds only where a target has at least {stats.MIN_SEEDS} "
                      "seeds (it leaves out target-to-target variation and is not adjusted for multiplicity); "
                      "no per-target verdict.")


def per_target_accuracy_table(summary: Summary) -> TableModel:
    rows = [[lab, *(_acc(summary.per_target_acc.get(lab, {}).get(t)) for t in summary.targets)]
            for lab in summary.labels]
    return TableModel(f"Accuracy per target (points, mean over seeds, weight decay {summary.weight_decay:g})",
                      ["base", *summary.targets], rows, "Absolute accuracies, main grid.")


def intertrained_table(summary: Summary) -> TableModel:
    return _comparison_table("Exploratory — fused vs intertrained, per source family (points)",
                             summary.vs_intertrained,
                             "Fused minus intertrained, paired per target and seed, over the targets that have that "
                             "intertrained base; the pooled comparison over every target is C2. " + EXPLORATORY)


def method_table(summary: Summary) -> TableModel:
    return _comparison_table("Exploratory — each fusion method against averaging, over the same sources (points)",
                             summary.vs_method,
                             "A fused base minus the plain average (`fused`) of the same sources, or without one, "
                             "minus the first fusion by name; paired per target and seed (accuracy). " + EXPLORATORY)


def spread_table(summary: Summary) -> TableModel:
    rows = [[s.label, f"{s.n_targets} ({_seeds(s.seeds)})", _acc(s.std), f"{s.helped} of {s.n_targets}"]
            for s in summary.spread]
    return TableModel("Exploratory — spread of per-target gains over pretrained",
                      ["base", "targets (seeds)", "std across targets", "mean gain > 0"], rows,
                      "Std (ddof=1) of the per-target mean gains; it includes seed noise and is over each row's own "
                      "targets, so rows over different targets are not comparable. No interval is printed (the "
                      "chi-square one under-covers skewed gains); the test on equal targets is C3.")


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
        cells += ["–"] * 3 if d is None else [f"{_gain(d.est.mean)} {interval_text(d.est.interval, d.est.n_targets)}",
                                              n_text(d.est), _dz(d.est.effect_size)]
        rows.append([w.label, *cells])
    return TableModel("Exploratory — weight decay: gain over pretrained at each weight decay, and the difference",
                      ["base", *(f"gain, wd={w:g}" for w in wds), f"wd {wds[-1]:g} − wd {wds[0]:g}", "n", "d_z"],
                      rows,
                      "Each gain is paired with pretrained at the same weight decay; the difference is paired per "
                      "target and seed. The test of the paper's claim (fused keeps its gain where intertraining "
                      "loses it) is the difference in differences, C4. " + EXPLORATORY)


def seed_std_table(summary: Summary) -> TableModel:
    ratio = {c.a: c for c in summary.seed_std_ratio}
    rows = []
    for s in summary.seed_std:
        r = ratio.get(s.label)
        if r is None or r.est is None:
            rows.append([s.label, "0", "–", "–", "–", "–", "–"])
            continue
        e = r.est
        ci = "–" if e.interval is None else f"[{math.exp(e.interval[0]):.2f}, {math.exp(e.interval[1]):.2f}]"
        rows.append([s.label, f"{s.n_targets} ({_seeds(s.seeds)})", _acc(s.std), _acc(s.reference_std),
                     f"{math.exp(e.mean):.2f}", ci if e.interval else interval_text(None, e.n_targets),
                     _dz(e.effect_size)])
    return TableModel("Exploratory — seed sensitivity: std of accuracy over seeds, over the same targets",
                      ["base", "targets (seeds)", "seed std", "pretrained, same targets", "ratio", "95% CI", "d_z"],
                      rows,
                      "Per target, std (ddof=1) over the seeds both bases ran (targets with >= 2 such seeds); the "
                      "stds are averages over targets, shown without an interval (a bootstrap of them under-covers). "
                      f"Ratio: exp of the mean over targets of log((std + {stats.SEED_STD_FLOOR:g}) / (pretrained's std + "
                      f"{stats.SEED_STD_FLOOR:g})), with the "
                      "exp of its interval; below 1: less sensitive to the seed than pretrained. The test is C5. "
                      + EXPLORATORY)


def n_models_table(summary: Summary) -> TableModel:
    rows = [[p.condition, str(p.n_fused), *comparison_cells(p.gain),
             str(p.subsets[0]) if p.subsets[0] == p.subsets[1] else f"{p.subsets[0]}–{p.subsets[1]}", str(p.n_runs)]
            for p in summary.n_models]
    return TableModel("Exploratory — number of models fused: gain over pretrained",
                      ["base", "models fused", *COMPARISON_HEADER, "subsets per target", "runs"], rows,
                      "Random subsets of the sources (leave-one-out); per target the mean over subsets and seeds; "
                      "each fusion method is its own curve. " + EXPLORATORY)


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
            d = b.difference.est
            cells.append([str(t), chain.pool, _gain(b.iteration_gain.est.mean), _gain(b.one_shot_gain.est.mean),
                          _gain(d.mean), interval_text(d.interval, d.n_targets),
                          f"{n_text(d)}, {_chain_seeds_text(b.chain_seeds)}", _dz(d.effect_size)])
        tables.append(TableModel(
            f"ColD Fusion, {chain.setting}: each iteration of {chain.label} beside one-shot fusion over the same "
            f"pool ({chain.one_shot}), same targets, seeds and chain seeds (points)",
            ["iteration", "pool", "iteration gain", "one-shot gain", "iteration − one-shot", "95% CI", "n",
             "d_z"], cells,
            f"Setting: {setting}. Per row, both gains over pretrained and their paired difference over the (target, "
            "seed) cells that the iteration, the one-shot fusion and pretrained all have, each cell the mean over the "
            "chain seeds both have there. With every source of the pool contributing, iteration 1 is the one-shot "
            "fusion itself (the same jobs), so its difference is 0. The last iteration's difference answers 'does "
            "iterating add to fusing once?' " + EXPLORATORY))
    return tables


def table1_f1(summary: Summary) -> TableModel:
    t = table1(summary)
    rows = [[lab, *(_acc(summary.table1_f1.get(lab, {}).get(f)) for f in summary.families),
             _acc(summary.table1_f1.get(lab, {}).get("mean"))] for lab in summary.labels]
    return TableModel(t.title.replace("accuracy", "macro-F1"), t.header, rows, t.note)


def all_tables(summary: Summary, comp: Completeness | None = None) -> list[TableModel]:
    tables = ([completeness_table(comp)] if comp else []) + [claims_table(summary), table1(summary)]
    if summary.table1_f1:
        tables.append(table1_f1(summary))
    tables += [per_target_accuracy_table(summary), gain_table(summary)]
    if summary.vs_pretrained_f1:
        tables.append(gain_table_f1(summary))
    tables.append(per_target_table(summary))
    if summary.vs_intertrained:
        tables.append(intertrained_table(summary))
    if summary.vs_method:
        tables.append(method_table(summary))
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
    """C1, prefixed by "partial: X of Y runs" when runs are missing."""
    prefix = f"Partial: {comp.n_finished} of {comp.n_planned} planned runs finished. " if comp and comp.partial else ""
    a, b = summary.primary
    c = next((c for c in summary.claims if c.id == "C1"), None)
    if c is None or c.verdict == NOT_MEASURED or c.estimate is None:
        text = f"{prefix}C1 {a} vs {b}: no paired runs, nothing to conclude."
        missing = [lab for lab in (a, b) if lab not in summary.labels]
        if missing:
            text += (f" The runs have no {' and no '.join(repr(m) for m in missing)} rows (bases with rows: "
                     f"{', '.join(summary.labels)}); C1 is named in the plan, so no other base takes its "
                     "place (name one with `confirmatory.fused` in the config).")
        return text
    text = (f"{prefix}C1 (confirmatory), {a} vs {b}: {_gain(c.estimate)} points, 95% CI "
            f"{claim_interval(c)} ({c.n} targets, {_seeds(c.seeds)}), d_z {_dz(c.effect_size)}, p (Holm over C1-C5) = "
            f"{_p(c.p_holm)}: {claim_verdict_text(c)}.")
    if c.detectable_observed is not None:
        text += f" Smallest gain detectable with 80% power at this n and spread: {c.detectable_observed:.2f} points."
    return text


HOW_TO_READ = [
    "Gain: a base's target accuracy minus the pretrained model's accuracy on the same target, seed and weight "
    "decay (accuracy points, i.e. percent). Positive: the base's finetuned accuracy was higher.",
    "n: the number of targets (the unit the claims generalise over) and of seeds per target. Each target counts "
    "once, with its mean over seeds.",
    f"95% CI of a mean over targets: the hull of the Student-t interval and Hall's skewness-corrected t interval "
    f"over the per-target means (printed only from {stats.MIN_TARGETS} targets up; 'n/a (n=2)' below). It assumes "
    "independent targets; see docs/statistics.md for its measured coverage. d_z: the mean divided by the SD of the "
    "per-target values.",
    "Confirmatory claims C1-C5: one test per claim of the paper, named in the config's `confirmatory` block before "
    "the run (its defaults where the config names none, as the claims table says); p-values Holm-adjusted over the "
    "measured ones of these five only. Verdict: 'better' (the paper's direction) only if the interval excludes "
    "no difference on that side and p (Holm) is below the config's alpha; 'worse' mirrored; otherwise "
    "'inconclusive', which means the data cannot tell, not that the bases are equal. A claim the run cannot "
    "address says why; one whose n cannot reach a verdict says so.",
    "Every other table is exploratory: intervals and effect sizes without verdicts or p-values, for reading.",
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
             f"Raw per-run records: [{inp.results_link}]({inp.results_link}); exports in this folder: "
             + ", ".join(f"[{n}]({n})" for n in EXPORTS) + ".", "",
             f"**{headline(s, inp.completeness)}**", ""]
    parts += ["", *(_md_table(t) + "\n" for t in all_tables(s, inp.completeness))]
    parts += [f"### {f.title}\n\n{figure_markdown(f)}" for f in inp.figures]
    parts += ["## The confirmatory tests", "", *(f"- {m}" for m in claim_methods(s)), ""]
    parts += ["## How to read this", "", *(f"- {p}" for p in HOW_TO_READ), ""]
    if inp.notes:
        parts += ["## Data notes", "", *(f"- {n}" for n in inp.notes), ""]
    if inp.config_text is not None:
        parts += ["<details><summary>experiment.yaml</summary>", "", "```yaml", inp.config_text.rstrip(), "```",
                  "", "</details>", ""]
    return "\n".join(parts)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}.headline{font-size:1.2em}
.table-scroll{max-width:100%;overflow-x:auto;margin:.5em 0}
.note{color:#666;font-size:.9em}code{overflow-wrap:anywhere}
img{max-width:100%;height:auto}figure{margin:1em 0;max-width:100%}figure img{display:block}
figcaption{color:#444;font-size:.9em;margin-top:.4em}pre{background:#f6f6f6;padding:1em;overflow:auto}"""


def figure_html(f: Figure) -> str:
    """A figure embedded as base64 PNG inside <figure>, its title and caption in the <figcaption>."""
    e = html.escape
    data = base64.b64encode(f.path.read_bytes()).decode("ascii")
    caption = f"<strong>{e(f.title)}.</strong>" + (f" {e(f.caption)}" if f.caption else "")
    return (f'<figure><img alt="{e(f.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


def figure_markdown(f: Figure) -> str:
    """A figure for report.md: the image (a file next to report.md) and its caption in italics under it."""
    caption = f"**{f.title}.**" + (f" _{f.caption}_" if f.caption else "")
    return f"![{f.title}]({f.path.name})\n\n{caption}\n"


def _html_table(t: TableModel) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in t.header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    note = f'<p class="note">{e(t.note)}</p>' if t.note else ""
    # the table scrolls inside its own box when wider than the page: nothing is cut off or pushed off-screen
    return (f'<h3>{e(t.title)}</h3><div class="table-scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}'
            f"</tbody></table></div>{note}")


def render_html(inp: ReportInputs) -> str:
    """A single file: CSS inline, figures embedded as base64 PNG, no external references."""
    e, s = html.escape, inp.summary
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>basefuse report</title>",
           f"<style>{CSS}</style></head><body><h1>basefuse report</h1>",
           f'<p class="note">Run directory: <code>{e(inp.run_dir)}</code></p>',
           f'<p class="note">Raw per-run records: <a href="{e(inp.results_link)}">{e(inp.results_link)}</a>; exports '
           'in this folder: ' + ", ".join(f'<a href="{e(n)}">{e(n)}</a>' for n in EXPORTS) + '.</p>',
           f'<p class="headline"><strong>{e(headline(s, inp.completeness))}</strong></p>',
           *(_html_table(t) for t in all_tables(s, inp.completeness))]
    out += [f"<h3>{e(f.title)}</h3>{figure_html(f)}" for f in inp.figures]
    out += ["<h2>The confirmatory tests</h2><ul>", *(f"<li>{e(m)}</li>" for m in claim_methods(s)), "</ul>"]
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


EXPORTS = ("results.csv", "results.json", "claims.csv", "claims.json", "comparisons.csv")


def claims_json(summary: Summary) -> list[dict]:
    """The five claims as plain records (the figures and `claims.csv` read the same fields)."""
    return [dataclasses.asdict(c) for c in summary.claims]


def _csv(rows: list[dict], fields: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: json.dumps(v) if isinstance(v, (dict, list, tuple)) else v for k, v in r.items()})
    return buf.getvalue()


def claims_csv(summary: Summary) -> str:
    rows = []
    for c in claims_json(summary):
        lo, hi = c["interval"] or (None, None)
        rows.append(c | {"interval_low": lo, "interval_high": hi, "seeds_min": c["seeds"][0],
                         "seeds_max": c["seeds"][1]})
    fields = ["id", "title", "a", "b", "measure", "scale", "estimate", "interval_low", "interval_high", "n",
              "seeds_min", "seeds_max", "effect_size", "p", "p_holm", "verdict", "reason", "reachable",
              "detectable_planned", "detectable_observed", "method", "paper", "values"]
    return _csv(rows, fields)


def comparisons_csv(summary: Summary) -> str:
    """Every exploratory comparison with its n and effect size (the tables' rows, unrounded)."""
    groups = [("vs pretrained", summary.vs_pretrained), ("vs pretrained (macro-F1)", summary.vs_pretrained_f1),
              ("fused vs intertrained", summary.vs_intertrained),
              ("fusion method", summary.vs_method),
              ("seed std log ratio", summary.seed_std_ratio),
              ("weight decay", [c for w in summary.weight_decay_rows for c in [*w.gains.values(), w.difference] if c]),
              ("models fused", [p.gain for p in summary.n_models])]
    rows = []
    for table, cs in groups:
        for c in cs:
            e = c.est
            if e is None:
                continue
            lo, hi = e.interval or (None, None)
            rows.append({"table": table, "a": c.a, "b": c.b, "mean": e.mean, "interval_low": lo, "interval_high": hi,
                         "n_targets": e.n_targets, "seeds_min": e.seeds[0], "seeds_max": e.seeds[1], "sd": e.sd,
                         "effect_size": e.effect_size})
    return _csv(rows, ["table", "a", "b", "mean", "interval_low", "interval_high", "n_targets", "seeds_min",
                       "seeds_max", "sd", "effect_size"])
