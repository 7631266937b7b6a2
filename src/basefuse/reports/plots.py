"""PNG figures of the report (matplotlib with the Agg backend, imported only when plotting).

Every figure shows the data points themselves (one per target, or per target and seed) next to the mean and its
interval, labels its axes, prints its n and explains its marks in a legend or in its caption. Panels that are
compared share one y-scale. Titles are wrapped to the figure's width and figures are saved with a tight bounding
box, so no text is cut off. Ratios (seed stds) are drawn on a log axis with the reference 1 inside it.

`report_figures` draws the standard figures of a report; `claim_figures` one figure per confirmatory claim
(`claim-C1.png`, ...), with `claim_caption` as the caption to print under it.
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from basefuse.reports import stats
from basefuse.reports.claims import Claim
from basefuse.reports.summary import PRETRAINED, Summary, seed_cells

TITLE_PT = 11  # title font size (points): `_wrap` sizes its lines from it
DPI = 100


@dataclass
class Drawn:
    """A figure written into the report folder, with the title and caption the page prints with it."""

    filename: str
    title: str
    caption: str


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _n(est) -> str:
    lo, hi = est.seeds
    return f"n = {est.n_targets} targets, {lo if lo == hi else f'{lo}–{hi}'} seed{'s' if hi != 1 else ''}"


def _wrap(text: str, width_in: float, pt: float = TITLE_PT) -> str:
    """`text` broken into lines that fit `width_in` inches at `pt` points (an average glyph is ~0.6 em wide)."""
    chars = max(20, int(width_in * 72 / (0.6 * pt)))
    return "\n".join(textwrap.fill(part, chars) for part in text.split("\n"))


def _title(fig, text: str) -> None:
    """A figure title wrapped to the figure's width (never cut off at either end)."""
    fig.suptitle(_wrap(text, fig.get_figwidth()), fontsize=TITLE_PT)


def _figure(width: float, height: float, rows: int = 1, **kw):
    plt = _pyplot()
    return plt.subplots(rows, 1, figsize=(width, height), squeeze=False, layout="constrained", **kw)


def _save(fig, path: Path) -> bool:
    """Write and close a figure (closed, so a long report does not keep every figure in memory). The tight
    bounding box grows the image to every artist: a long title or legend is never cut off."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    _pyplot().close(fig)
    return True


def _ci(interval: tuple[float, float] | None, fmt: str = "+.2f") -> str:
    return "95% CI n/a" if interval is None else f"95% CI [{interval[0]:{fmt}}, {interval[1]:{fmt}}]"


# ---- gains over pretrained --------------------------------------------------------------------

GAINS_CAPTION = ("One panel per base, all panels on one y-scale (compare heights across panels). Per target: "
                 "small dots = the gain on each seed; short thick bar = the target's mean over seeds; thin vertical "
                 "line = that target's 95% t-interval over seeds (drawn from 3 seeds up). Red line and band: the "
                 "mean over targets and its 95% interval; black line: no gain.")


def plot_target_gains(summary: Summary, path: Path) -> bool:
    """One panel per base on a shared y-scale: each seed's gain per target (dots), the target's mean (bar) and
    interval over seeds (thin line), and the mean over targets with its 95% interval (red band)."""
    rows = summary.vs_pretrained
    if not rows:
        return False
    targets = summary.targets
    fig, axes = _figure(max(6.5, 0.8 * len(targets) + 2.5), 1.9 * len(rows) + 1.6, len(rows), sharex=True,
                        sharey=True)
    labelled: set[str] = set()

    def once(label: str) -> str | None:  # each mark explained once, in the legend of the first panel
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for ax, c in zip(axes[:, 0], rows):
        for j, t in enumerate(targets):
            vals = c.values.get(t, [])
            if not vals:
                continue
            xs = [j + 0.08 * (k - (len(vals) - 1) / 2) for k in range(len(vals))]
            ax.plot(xs, vals, "o", color="tab:blue", markersize=3.5, alpha=0.7, label=once("gain on one seed"))
            ax.plot([j - 0.25, j + 0.25], [c.per_target[t].mean] * 2, color="tab:blue", linewidth=2,
                    label=once("target mean over seeds"))
            if c.per_target[t].interval:
                lo, hi = c.per_target[t].interval
                ax.plot([j, j], [lo, hi], color="tab:blue", linewidth=0.8,
                        label=once("target 95% t-interval over seeds"))
        e = c.est
        ax.axhline(e.mean, color="tab:red", linewidth=1, label=once("mean over targets"))
        if e.interval:
            ax.axhspan(*e.interval, color="tab:red", alpha=0.12, label=once("its 95% interval"))
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"{c.a}: mean {e.mean:+.2f} points, {_ci(e.interval)} ({_n(e)})", fontsize="small", loc="left")
        ax.set_ylabel("gain (points)")
    handles = [h for ax in axes[:, 0] for h in ax.get_legend_handles_labels()[0]]
    axes[0, 0].legend(handles, [h.get_label() for h in handles], fontsize="x-small", loc="upper left",
                      bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xticks(range(len(targets)), targets, rotation=30, ha="right")
    axes[-1, 0].set_xlabel("target task")
    _title(fig, f"Gain over pretrained per target, weight decay {summary.weight_decay:g} (one y-scale for all "
                "panels)")
    return _save(fig, path)


def plot_fused_vs_intertrained(summary: Summary, path: Path) -> bool:
    """Fused minus intertrained per target, one marker series per comparison on one axis: the per-target mean
    difference (dot) and each seed's difference (small dots), with the mean over targets and its interval."""
    rows = summary.vs_intertrained
    if not rows:
        return False
    targets = [t for t in summary.targets if any(t in c.values for c in rows)]
    fig, axes = _figure(max(6.5, 0.8 * len(targets) + 4.5), 4.4)
    ax = axes[0, 0]
    width = 0.6 / max(1, len(rows))
    for i, c in enumerate(rows):
        color = f"C{i % 10}"
        dx = width * (i - (len(rows) - 1) / 2)
        xs = [j + dx for j, t in enumerate(targets) if t in c.values]
        seeds = [(j + dx, v) for j, t in enumerate(targets) for v in c.values.get(t, [])]
        ax.plot([x for x, _ in seeds], [v for _, v in seeds], ".", color=color, alpha=0.45, markersize=4)
        means = [c.per_target[t].mean for t in targets if t in c.values]
        e = c.est
        ax.plot(xs, means, "o", color=color, markersize=6,
                label=f"{c.name}: mean {e.mean:+.2f}, {_ci(e.interval)} ({_n(e)})")
        lo, hi = min(xs), max(xs)
        ax.plot([lo - 0.3, hi + 0.3], [e.mean] * 2, color=color, linewidth=1, linestyle="--")
        if e.interval:
            ax.fill_between([lo - 0.3, hi + 0.3], *([v] * 2 for v in e.interval), color=color, alpha=0.1)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(targets)), targets, rotation=30, ha="right")
    ax.set_xlabel("target task")
    ax.set_ylabel("fused − intertrained (points)")
    fig.legend(fontsize="x-small", loc="outside lower left", frameon=False)
    _title(fig, "Fused vs intertrained, per target (each fused base against the intertrained base of the same "
                "targets)")
    return _save(fig, path)


FUSED_VS_INTERTRAINED_CAPTION = ("Per target: large dot = mean over seeds of fused minus intertrained accuracy "
                                 "(same target and seed), small dots = each seed. Dashed line and shaded band over "
                                 "a comparison's targets: its mean over targets and 95% interval; black line: no "
                                 "difference. One y-scale for all comparisons.")


def plot_spread(summary: Summary, path: Path) -> bool:
    """Each base's per-target mean gains over pretrained side by side (one dot per target, same colour for a
    target across bases), with the mean ± one SD across targets: how much the gain depends on the target."""
    rows = [c for c in summary.vs_pretrained if c.per_target]
    if not rows:
        return False
    targets = summary.targets
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(targets) <= 10 else "tab20")
    fig, axes = _figure(max(6.0, 1.3 * len(rows) + 4.0), 4.6)
    ax = axes[0, 0]
    for i, c in enumerate(rows):
        means = [c.per_target[t].mean for t in targets if t in c.per_target]
        for j, t in enumerate(targets):
            if t in c.per_target:
                ax.plot(i + 0.3 * ((j + 0.5) / len(targets) - 0.5), c.per_target[t].mean, "o",
                        color=cmap(j % cmap.N), markersize=5, label=t if i == 0 or not any(
                            t in r.per_target for r in rows[:i]) else None)
        m = float(np.mean(means))
        sd = float(np.std(means, ddof=1)) if len(means) > 1 else 0.0
        ax.errorbar([i + 0.25], [m], yerr=[[sd], [sd]], fmt="s", color="black", capsize=4, markersize=4,
                    label="mean ± SD across targets" if i == 0 else None)
        ax.annotate(f"SD {sd:.2f}\nn={len(means)}", (i + 0.3, m), xytext=(6, 0), textcoords="offset points",
                    fontsize="x-small", va="center")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(rows)), [c.a for c in rows], rotation=25, ha="right")
    ax.set_xlim(-0.5, len(rows) - 0.2)
    ax.set_xlabel("base")
    ax.set_ylabel("mean gain over pretrained (points)")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), title="target",
              title_fontsize="x-small")
    _title(fig, f"Dependence on the target: per-target gains of each base side by side, weight decay "
                f"{summary.weight_decay:g}")
    return _save(fig, path)


SPREAD_CAPTION = ("One dot per target (its mean gain over seeds; a target has the same colour for every base); "
                  "black square and bar: the mean across targets ± one standard deviation across targets (the "
                  "spread, a description; its test is in the confirmatory table). All bases on one y-scale.")


# ---- seed std ---------------------------------------------------------------------------------

def seed_std_ratios(records: Iterable, weight_decay: float) -> dict[str, dict[str, tuple[float, float, int]]]:
    """label -> target -> (seed std of the label, seed std of pretrained, seeds) over the seeds both ran at
    `weight_decay` in the main grid (targets with >= 2 shared seeds); the pairs behind the seed-std figure."""
    acc = seed_cells([r for r in records if r.ablation == "main" and r.weight_decay == weight_decay])
    ref = acc.get(PRETRAINED, {})
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for label, cells in acc.items():
        if label == PRETRAINED:
            continue
        for target, seeds in cells.items():
            shared = sorted(set(seeds) & set(ref.get(target, {})))
            if len(shared) >= 2:
                out.setdefault(label, {})[target] = (float(np.std([seeds[s] for s in shared], ddof=1)),
                                                     float(np.std([ref[target][s] for s in shared], ddof=1)),
                                                     len(shared))
    return out


def _ratio_axis(ax, values: Sequence[float]) -> None:
    """A log y-axis over `values` (ratios) that always holds the reference 1, ticks read as plain numbers."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = min([*values, 1.0]), max([*values, 1.0])
    lo, hi = lo / 1.25, hi * 1.25
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    candidates = [m * 10.0 ** k for k in range(-4, 5) for m in (1, 2, 5)]
    ticks = [t for t in candidates if lo <= t <= hi]
    if len(ticks) < 3:
        candidates = sorted(candidates + [m * 10.0 ** k for k in range(-4, 5) for m in (1.5, 3, 4, 7)])
        ticks = [t for t in candidates if lo <= t <= hi]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(NullLocator())


def plot_seed_std(summary: Summary, path: Path, records: Iterable = ()) -> bool:
    """Per target, the base's seed std divided by pretrained's over the same seeds (one dot per target, log
    axis, reference 1), with the geometric mean over targets and its 95% interval: the paired comparison that
    the seed-std test makes (`stats.log_std_ratios`, floor `stats.SEED_STD_FLOOR` points)."""
    pairs = seed_std_ratios(records, summary.weight_decay)
    rows = [(s.label, pairs[s.label]) for s in summary.seed_std if pairs.get(s.label)]
    if not rows:
        return False
    fig, axes = _figure(max(6.0, 1.2 * len(rows) + 4.0), 4.4)
    ax = axes[0, 0]
    shown: list[float] = []
    for i, (label, per_target) in enumerate(rows):
        logs = stats.log_std_ratios([v[0] for v in per_target.values()], [v[1] for v in per_target.values()])
        xs = [i - 0.15 + 0.3 * (k + 0.5) / len(logs) - 0.15 for k in range(len(logs))]
        ratios = [math.exp(v) for v in logs]
        ax.plot(xs, ratios, "o", color="tab:blue", alpha=0.7, markersize=4,
                label="one target: base std / pretrained std" if i == 0 else None)
        gm = math.exp(float(np.mean(logs)))
        ci = stats.mean_interval(logs)
        err = None if ci is None else [[gm - math.exp(ci[0])], [math.exp(ci[1]) - gm]]
        ax.errorbar([i + 0.2], [gm], yerr=err, fmt="s", color="tab:red", capsize=4, markersize=5,
                    label="geometric mean over targets, 95% interval" if i == 0 else None)
        seeds = sorted({v[2] for v in per_target.values()})
        note = f"n={len(logs)}\n{seeds[0] if len(seeds) == 1 else f'{seeds[0]}–{seeds[-1]}'} seeds"
        if ci is None:
            note += "\nCI n/a"
        ax.annotate(note, (i + 0.2, gm), xytext=(8, 0), textcoords="offset points", fontsize="x-small",
                    va="center")
        shown += ratios + [gm] + ([math.exp(ci[0]), math.exp(ci[1])] if ci else [])
    ax.axhline(1.0, color="black", linewidth=0.8, label="1: same seed std as pretrained")
    _ratio_axis(ax, shown)
    ax.set_xticks(range(len(rows)), [label for label, _ in rows], rotation=25, ha="right")
    ax.set_xlim(-0.5, len(rows) - 0.1)
    ax.set_xlabel("base")
    ax.set_ylabel("seed std ÷ pretrained's (log scale)")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _title(fig, f"Seed sensitivity: each base's seed std relative to pretrained's, per target, same seeds, "
                f"weight decay {summary.weight_decay:g}")
    return _save(fig, path)


SEED_STD_CAPTION = (f"Per target, the std of accuracy over the seeds both bases ran, the base's divided by "
                    f"pretrained's ({stats.SEED_STD_FLOOR:g} points added to both, so a target where every seed "
                    f"tied stays finite); log scale, 1 = as sensitive to the seed as pretrained, below 1 = less. "
                    f"Red: geometric mean over targets with its 95% interval (of the mean log ratio).")


# ---- ablations --------------------------------------------------------------------------------

def plot_weight_decay(summary: Summary, path: Path) -> bool:
    """Gain over pretrained at each weight decay, per base, with 95% intervals over targets."""
    rows = summary.weight_decay_rows
    if not rows:
        return False
    wds = summary.weight_decays
    fig, axes = _figure(6.5, 4.4)
    ax = axes[0, 0]
    for i, w in enumerate(rows):
        xs, ys, lo, hi = [], [], [], []
        for k, wd in enumerate(wds):
            c = w.gains.get(wd)
            if c is None:
                continue
            xs.append(k + 0.04 * (i - (len(rows) - 1) / 2))
            ys.append(c.est.mean)
            lo.append(c.est.mean - (c.est.interval[0] if c.est.interval else c.est.mean))
            hi.append((c.est.interval[1] if c.est.interval else c.est.mean) - c.est.mean)
        n = max(c.est.n_targets for c in w.gains.values())
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=f"{w.label} (n={n} targets)")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(wds)), [f"{wd:g}" for wd in wds])
    ax.set_xlabel("weight decay of the target finetune")
    ax.set_ylabel("gain over pretrained (points)")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _title(fig, "Weight decay: gain over pretrained at each weight decay (95% interval over targets)")
    return _save(fig, path)


def plot_n_models(summary: Summary, path: Path) -> bool:
    """Mean gain against the number of models fused, one curve per fusion condition: a 95% band once every k
    has >= 3 subsets per target, else the points with their n."""
    if not summary.n_models:
        return False
    fig, axes = _figure(6.0, 4.2)
    ax = axes[0, 0]
    curves: dict[str, list] = {}
    for p in summary.n_models:
        curves.setdefault(p.condition, []).append(p)
    for cond, pts in curves.items():
        ns = [p.n_fused for p in pts]
        means = [p.gain.est.mean for p in pts]
        if all(p.subsets[0] >= 3 and p.gain.est.interval for p in pts):
            (line,) = ax.plot(ns, means, marker="o", label=f"{cond} (random subsets)")
            ax.fill_between(ns, [p.gain.est.interval[0] for p in pts], [p.gain.est.interval[1] for p in pts],
                            alpha=0.25, color=line.get_color(), label=f"{cond}: 95% interval over targets")
        else:
            ax.plot(ns, means, "o", label=f"{cond}: mean over targets (no band: < 3 subsets per k)")
        for p in pts:
            ax.annotate(f"n={p.gain.est.n_targets}", (p.n_fused, p.gain.est.mean), xytext=(4, 4),
                        textcoords="offset points", fontsize="x-small")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(sorted({p.n_fused for p in summary.n_models}))
    ax.set_xlabel("number of source models fused")
    ax.set_ylabel("gain over pretrained (points)")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _title(fig, "Gain over pretrained against the number of models fused")
    return _save(fig, path)


def plot_cold_iterations(summary: Summary, path: Path) -> bool:
    """Gain over pretrained against the ColD Fusion iteration, per chain (seen and unseen chains apart by label),
    with 95% intervals and n; the gain of one-shot fusion over the same pool is drawn as a line to compare."""
    chains = [c for c in summary.cold if c.iterations]
    if not chains:
        return False
    fig, axes = _figure(6.5, 4.4)
    ax = axes[0, 0]
    for i, chain in enumerate(chains):
        its = list(chain.iterations)
        xs = [t + 0.05 * (i - (len(chains) - 1) / 2) for t in its]
        ests = [chain.iterations[t].est for t in its]
        lo = [e.mean - (e.interval[0] if e.interval else e.mean) for e in ests]
        hi = [(e.interval[1] if e.interval else e.mean) - e.mean for e in ests]
        bars = ax.errorbar(xs, [e.mean for e in ests], yerr=[lo, hi], marker="o", capsize=3,
                           label=f"{chain.label}, {chain.setting}")
        for x, e in zip(xs, ests):
            ax.annotate(f"n={e.n_targets}", (x, e.mean), xytext=(4, 4), textcoords="offset points",
                        fontsize="x-small")
        if chain.one_shot_gain is not None:
            e = chain.one_shot_gain.est
            ax.axhline(e.mean, linestyle="--", linewidth=1, color=bars.lines[0].get_color(),
                       label=f"{chain.one_shot}: one-shot, same pool ({_n(e)})")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(sorted({t for c in chains for t in c.iterations}))
    ax.set_xlabel("ColD Fusion iteration")
    ax.set_ylabel("gain over pretrained (points)")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _title(fig, "ColD Fusion: gain over pretrained per iteration (95% interval over targets)")
    return _save(fig, path)


def _caption(text: str):
    return lambda summary: text


# (file name, title, caption(summary), draw(summary, path, records) -> bool): the report's figures, in order
FIGURES = (
    ("gains_per_target.png", "Gain over pretrained per target", _caption(GAINS_CAPTION),
     lambda s, p, r: plot_target_gains(s, p)),
    ("fused_vs_intertrained.png", "Fused vs intertrained per target", _caption(FUSED_VS_INTERTRAINED_CAPTION),
     lambda s, p, r: plot_fused_vs_intertrained(s, p)),
    ("spread.png", "Dependence on the target: per-target gains side by side", _caption(SPREAD_CAPTION),
     lambda s, p, r: plot_spread(s, p)),
    ("seed_std.png", "Seed sensitivity: seed std relative to pretrained, per target", _caption(SEED_STD_CAPTION),
     plot_seed_std),
    ("weight_decay.png", "Weight decay",
     _caption("Mean gain over pretrained at each weight decay with its 95% interval over targets; black line: "
              "no gain."), lambda s, p, r: plot_weight_decay(s, p)),
    ("gain_vs_n_models.png", "Gain vs number of models fused",
     _caption("Mean gain over pretrained against the number of source models fused (random subsets), per fusion "
              "method; band: 95% interval over targets where every point has >= 3 subsets per target; n: "
              "targets."), lambda s, p, r: plot_n_models(s, p)),
    ("cold_iterations.png", "ColD Fusion: gain vs iteration",
     _caption("Mean gain over pretrained of each ColD Fusion iteration with its 95% interval over targets (n: "
              "targets); dashed: one-shot fusion over the same targets and seeds as iteration 1."),
     lambda s, p, r: plot_cold_iterations(s, p)),
)


def report_figures(summary: Summary, folder: Path, records: Iterable = ()) -> list[Drawn]:
    """Draw every standard figure that has data into `folder`; `records` (the run records) feed the seed-std
    figure's per-target stds."""
    records = list(records)
    out = []
    for name, title, caption, draw in FIGURES:
        if draw(summary, Path(folder) / name, records):
            out.append(Drawn(name, title, caption(summary)))
    return out


# ---- one figure per confirmatory claim ----------------------------------------------------------

def claim_filename(claim: Claim) -> str:
    return f"claim-{claim.id}.png"


def _p(x: float) -> str:
    return f"{x:.3f}" if x >= 0.001 else "<0.001"


def _claim_number(x: float, scale: str) -> str:
    return f"{x:.3g}×" if scale == "ratio" else f"{round(x, 2) or 0.0:+.2f}"


def claim_caption(claim: Claim) -> str:
    """The caption printed under a claim's figure: what the dots are, the estimate, interval, p and verdict."""
    ratio = claim.scale == "ratio"
    dots = (f"One dot per target: {claim.measure}" + (" shown as a ratio (exp of the log), log axis" if ratio
                                                      else "") + f"; {claim.a} vs {claim.b}.")
    ref = "Black line: 1, no difference." if ratio else "Black line: 0, no difference."
    if claim.estimate is None:
        est = "No estimate."
    elif claim.interval is None:
        est = (f"Red square: the estimate {_claim_number(claim.estimate, claim.scale)}; no interval "
               f"({claim.reason or 'none may be printed at this n'}).")
    else:
        lo, hi = claim.interval
        est = (f"Red square and bar: the estimate {_claim_number(claim.estimate, claim.scale)} and its 95% interval "
               f"[{_claim_number(lo, claim.scale)}, {_claim_number(hi, claim.scale)}].")
    p = "" if claim.p_holm is None else f" p (Holm over the claims) = {_p(claim.p_holm)}."
    verdict = f" Verdict: {claim.verdict} (n = {claim.n} targets)."
    why = f" {claim.reason[0].upper()}{claim.reason[1:]}." if claim.reason and claim.interval is not None else ""
    method = f" Method: {claim.method}." if claim.method else ""
    return " ".join([dots, ref, est]) + p + verdict + why + method


def plot_claim(claim: Claim, path: Path) -> bool:
    """One claim: its per-target values (dots, one per target, named on the x-axis), the estimate and its 95%
    interval (or "interval n/a"), the reference (0 for points, 1 on a log axis for ratios: the values are logs
    of ratios and are drawn exponentiated), with the verdict and n in the title. False (nothing written) when
    the claim has neither values nor an estimate (not measured)."""
    if not claim.values and claim.estimate is None:
        return False
    ratio = claim.scale == "ratio"
    targets = list(claim.values)
    shown = [math.exp(v) if ratio else v for v in claim.values.values()]
    fig, axes = _figure(max(5.5, 0.55 * len(targets) + 3.5), 4.6)
    ax = axes[0, 0]
    if targets:
        ax.plot(range(len(targets)), shown, "o", color="tab:blue", markersize=6, label="one target")
    x_est = len(targets) + 0.5
    marks = list(shown)
    if claim.estimate is not None:
        if claim.interval is not None:
            lo, hi = claim.interval
            ax.errorbar([x_est], [claim.estimate], yerr=[[claim.estimate - lo], [hi - claim.estimate]], fmt="s",
                        color="tab:red", capsize=5, markersize=7, label="estimate, 95% interval")
            marks += [lo, hi]
        else:
            ax.plot([x_est], [claim.estimate], "s", color="tab:red", markersize=7, label="estimate")
            ax.annotate("interval n/a", (x_est, claim.estimate), xytext=(0, -16), textcoords="offset points",
                        ha="center", fontsize="x-small", color="tab:red")
        marks.append(claim.estimate)
    ax.axhline(1.0 if ratio else 0.0, color="black", linewidth=0.8)
    if ratio:
        _ratio_axis(ax, [m for m in marks if m > 0] or [1.0])
    else:
        lo, hi = min([*marks, 0.0]), max([*marks, 0.0])
        pad = 0.08 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks([*range(len(targets)), x_est], [*targets, "estimate"], rotation=30, ha="right")
    ax.set_xlim(-0.6, x_est + 0.6)
    ax.set_xlabel("target task")
    ax.set_ylabel(f"{claim.measure.removeprefix('log ')} (log scale)" if ratio else claim.measure)
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    p = "" if claim.p_holm is None else f", p (Holm) = {_p(claim.p_holm)}"
    _title(fig, f"{claim.id} {claim.title} ({claim.a} vs {claim.b}): {claim.verdict}, n = {claim.n} targets{p}")
    return _save(fig, path)


def claim_figures(claims: Iterable[Claim], folder: Path) -> dict[str, str]:
    """Draw `claim-<id>.png` into `folder` for every claim that has values or an estimate; claim id -> file
    name (relative to `folder`). A claim without data (not measured) gets no figure and no entry."""
    out = {}
    for claim in claims:
        name = claim_filename(claim)
        if plot_claim(claim, Path(folder) / name):
            out[claim.id] = name
    return out

