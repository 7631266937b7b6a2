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
from basefuse.reports.stats import PRETRAINED, LabelSummary, Summary


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


def _acc(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _gain(x: float | None) -> str:
    return "–" if x is None else f"{x:+.2f}"


def _ci(s: LabelSummary) -> str:
    return "–" if s.gain is None else f"[{s.gain.lo:+.2f}, {s.gain.hi:+.2f}]"


def table1(summary: Summary) -> TableModel:
    """The paper's Table 1: mean accuracy per base label and target family."""
    rows = [[lab, *(_acc(summary.table1[lab][f]) for f in summary.families), _acc(summary.table1[lab]["mean"])]
            for lab in summary.labels]
    return TableModel(f"Table 1: accuracy (points) by target family, weight decay {summary.weight_decay:g}",
                      ["base", *summary.families, "mean"], rows,
                      "Mean over targets of the mean over seeds (main grid); a row that covers only some targets has no "
                      "overall mean (it would not be comparable with pretrained's).")


def gain_table(summary: Summary) -> TableModel:
    rows = []
    for lab in summary.labels:
        s = summary.by_label[lab]
        pre = s.condition == PRETRAINED
        wtl = "–" if pre or not s.per_target else f"{s.wins} / {s.ties} / {s.losses}"
        std = "–" if s.seed_std is None else f"{s.seed_std:.2f}"
        rows.append([lab, "(reference)" if pre else _gain(s.gain.mean if s.gain else None),
                     "–" if pre else _ci(s), wtl, std, str(s.n_runs)])
    return TableModel("Gain over pretrained, wins and seed variability (Table 3)",
                      ["base", "mean gain", "95% CI", "win / tie / loss", "seed std", "runs"], rows,
                      f"Points; CI: bootstrap over targets and seeds ({summary.n_boot} resamples); a tie is a "
                      f"per-target mean gain under {summary.tie_threshold:g} points or a seed CI that includes 0.")


def per_target_table(summary: Summary) -> TableModel:
    rows = []
    for lab in summary.labels:
        s = summary.by_label[lab]
        if s.condition == PRETRAINED or not s.per_target:
            continue
        rows.append([lab, *(f"{_gain(s.per_target[t].mean)} ({s.per_target[t].outcome})" if t in s.per_target
                            else "–" for t in summary.targets)])
    return TableModel("Gain per target (points, outcome)", ["base", *summary.targets], rows)


def weight_decay_table(summary: Summary) -> TableModel:
    rows = [[lab, *(f"{_acc(a)} ({_gain(g)})" for a, g in (summary.table2[lab][w] for w in summary.weight_decays))]
            for lab in summary.labels]
    return TableModel("Table 2: weight decay, mean accuracy (gain over pretrained)",
                      ["base", *(f"wd={w:g}" for w in summary.weight_decays)], rows)


def n_models_table(summary: Summary) -> TableModel:
    rows = [[str(p.n_fused), _gain(p.gain.mean), f"[{p.gain.lo:+.2f}, {p.gain.hi:+.2f}]", str(p.n_runs)]
            for p in summary.n_models]
    return TableModel("Number of models fused", ["models fused", "mean gain", "95% CI", "runs"], rows)


def all_tables(summary: Summary) -> list[TableModel]:
    tables = [table1(summary), gain_table(summary), per_target_table(summary)]
    if len(summary.weight_decays) > 1:
        tables.append(weight_decay_table(summary))
    if summary.n_models:
        tables.append(n_models_table(summary))
    return tables


def sentence(s: LabelSummary) -> str:
    """One honest sentence about a base label versus pretrained."""
    if s.gain is None:
        return f"{s.label} has no runs paired with pretrained."
    g, n = s.gain, len(s.per_target)
    ci = f"[95% CI {g.lo:+.2f}, {g.hi:+.2f}]"
    tail = (f"winning {s.wins} of {n} targets ({s.ties} {'tie' if s.ties == 1 else 'ties'}, "
            f"{s.losses} {'loss' if s.losses == 1 else 'losses'})")
    if g.lo > 0:
        return f"{s.label} beat pretrained by {g.mean:+.2f} points {ci} on average, {tail}."
    if g.hi < 0:
        return f"{s.label} did worse than pretrained by {g.mean:+.2f} points {ci} on average, {tail}."
    return (f"{s.label} did not clearly beat pretrained: {g.mean:+.2f} points {ci} on average "
            f"(the CI includes 0), {tail}.")


def headline(summary: Summary) -> str:
    """The sentence for "fused (all)" if run, else for the best fused (or any) base."""
    cands = [summary.by_label[lab] for lab in summary.labels
             if summary.by_label[lab].condition != PRETRAINED and summary.by_label[lab].gain is not None]
    if not cands:
        return "No base condition was paired with a pretrained run: nothing to compare."
    for s in cands:
        if s.label == "fused (all)":
            return sentence(s)
    fused = [s for s in cands if s.condition == "fused"] or cands
    return sentence(max(fused, key=lambda s: s.gain.mean))


HOW_TO_READ = [
    "Gain: a base's target accuracy minus the pretrained model's accuracy on the same target, seed and weight "
    "decay (accuracy points, i.e. percent). Positive means the base helped.",
    "95% CI: a two-stage bootstrap (resample targets, then each target's seeds; percentile interval). If it "
    "includes 0, the data do not show a reliable difference.",
    "Win / tie / loss: per target, a win needs a mean gain of at least the tie threshold and a seeds-only "
    "bootstrap CI above 0; a loss the mirror image; anything else is a tie. With only 2 seeds that CI spans "
    "the two seeds' gains, so a win means every seed gained; with 1 seed it is that seed's gain: use more "
    "seeds before trusting single targets.",
    "Seed std: standard deviation of accuracy over seeds per target, averaged over targets. Lower means the base "
    "gives more stable finetuning (the paper's Table 3).",
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
    parts = ["# basefuse report", "", f"Run directory: `{inp.run_dir}`", "", f"**{headline(s)}**", ""]
    parts += [f"- {sentence(s.by_label[lab])}" for lab in s.labels if s.by_label[lab].condition != PRETRAINED]
    parts += ["", *(_md_table(t) + "\n" for t in all_tables(s))]
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
           f'<p class="headline"><strong>{e(headline(s))}</strong></p><ul>',
           *(f"<li>{e(sentence(s.by_label[lab]))}</li>" for lab in s.labels
             if s.by_label[lab].condition != PRETRAINED), "</ul>",
           *(_html_table(t) for t in all_tables(s))]
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
