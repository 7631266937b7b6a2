"""PNG figures of the report (matplotlib with the Agg backend, imported only when plotting).

Every figure shows the data points themselves (one per target and seed, or per target) next to
the mean and its interval, labels its axes and prints its n.
"""
from __future__ import annotations

from pathlib import Path

from basefuse.reports.summary import Summary


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _n(est) -> str:
    lo, hi = est.seeds
    return f"n = {est.n_targets} targets, {lo if lo == hi else f'{lo}–{hi}'} seed{'s' if hi != 1 else ''}"



def _save(fig, path: Path) -> bool:
    """Lay out, write and close a figure (closed, so a long report does not keep every figure in memory)."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return True

def plot_target_gains(summary: Summary, path: Path) -> bool:
    """One panel per base: each seed's gain per target (dots), the target's mean (bar), and the mean over
    targets with its 95% t-interval (band)."""
    rows = summary.vs_pretrained
    if not rows:
        return False
    plt = _pyplot()
    targets = summary.targets
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(6.5, 0.8 * len(targets) + 2.5), 1.9 * len(rows) + 1.2),
                             sharex=True, squeeze=False)
    for ax, c in zip(axes[:, 0], rows):
        for j, t in enumerate(targets):
            vals = c.values.get(t, [])
            if not vals:
                continue
            xs = [j + 0.08 * (k - (len(vals) - 1) / 2) for k in range(len(vals))]
            ax.plot(xs, vals, "o", color="tab:blue", markersize=3.5, alpha=0.7)
            ax.plot([j - 0.25, j + 0.25], [c.per_target[t].mean] * 2, color="tab:blue", linewidth=2)
            if c.per_target[t].interval:
                lo, hi = c.per_target[t].interval
                ax.plot([j, j], [lo, hi], color="tab:blue", linewidth=0.8)
        e = c.est
        ax.axhline(e.mean, color="tab:red", linewidth=1)
        if e.interval:
            ax.axhspan(*e.interval, color="tab:red", alpha=0.12)
        ax.axhline(0, color="black", linewidth=0.8)
        ci = "CI n/a" if e.interval is None else f"95% CI [{e.interval[0]:+.2f}, {e.interval[1]:+.2f}]"
        ax.set_title(f"{c.a}: mean {e.mean:+.2f} points, {ci} ({_n(e)})", fontsize="small", loc="left")
        ax.set_ylabel("gain (points)")
    axes[-1, 0].set_xticks(range(len(targets)), targets, rotation=30, ha="right")
    axes[-1, 0].set_xlabel("target task")
    fig.suptitle(f"Gain over pretrained per target, weight decay {summary.weight_decay:g}: dots = seeds, bar = "
                 "target mean, red = mean over targets and 95% CI", fontsize="small")
    return _save(fig, path)


def plot_seed_std(summary: Summary, path: Path) -> bool:
    """Seed std of each base next to pretrained's over the same targets, with bootstrap 95% CIs."""
    rows = [s for s in summary.seed_std if s.std is not None]
    if not rows:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.5, 1.1 * len(rows) + 2), 4.0))
    for i, s in enumerate(rows):
        for dx, value, ci, color, name in ((-0.12, s.reference_std, s.reference_interval, "tab:gray", "pretrained"),
                                           (0.12, s.std, s.interval, "tab:blue", "base")):
            err = None if ci is None else [[value - ci[0]], [ci[1] - value]]
            ax.errorbar([i + dx], [value], yerr=err, fmt="o", color=color, capsize=3,
                        label=f"{name} (same targets)" if i == 0 else None)
        ax.annotate(f"n={s.n_targets}", (i, 0), xytext=(0, 2), textcoords="offset points", ha="center",
                    fontsize="x-small", xycoords=("data", "axes fraction"))
    ax.set_xticks(range(len(rows)), [s.label for s in rows], rotation=25, ha="right")
    ax.set_ylabel("std of accuracy over seeds (points)")
    ax.set_xlabel("base (n = targets with >= 2 shared seeds)")
    ax.set_title("Seed sensitivity vs pretrained over the same targets (95% bootstrap CI)", fontsize="small")
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_weight_decay(summary: Summary, path: Path) -> bool:
    """Gain over pretrained at each weight decay, per base, with 95% t-intervals over targets."""
    rows = summary.weight_decay_rows
    if not rows:
        return False
    plt = _pyplot()
    wds = summary.weight_decays
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
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
    ax.set_title("Weight decay: gain at each weight decay (95% CI over targets)", fontsize="small")
    ax.legend(fontsize="x-small")
    return _save(fig, path)


def plot_n_models(summary: Summary, path: Path) -> bool:
    """Mean gain against the number of models fused, one curve per fusion condition: a 95% band once every k
    has >= 3 subsets per target, else the points with their n."""
    if not summary.n_models:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    curves: dict[str, list] = {}
    for p in summary.n_models:
        curves.setdefault(p.condition, []).append(p)
    for cond, pts in curves.items():
        ns = [p.n_fused for p in pts]
        means = [p.gain.est.mean for p in pts]
        if all(p.subsets[0] >= 3 and p.gain.est.interval for p in pts):
            (line,) = ax.plot(ns, means, marker="o", label=f"{cond} (random subsets)")
            ax.fill_between(ns, [p.gain.est.interval[0] for p in pts], [p.gain.est.interval[1] for p in pts],
                            alpha=0.25, color=line.get_color(), label=f"{cond}: 95% CI over targets")
        else:
            ax.plot(ns, means, "o", label=f"{cond}: mean over targets (no band: < 3 subsets per k)")
        for p in pts:
            ax.annotate(f"n={p.gain.est.n_targets}", (p.n_fused, p.gain.est.mean), xytext=(4, 4),
                        textcoords="offset points", fontsize="x-small")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(sorted({p.n_fused for p in summary.n_models}))
    ax.set_xlabel("number of source models fused")
    ax.set_ylabel("gain over pretrained (points)")
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_cold_iterations(summary: Summary, path: Path) -> bool:
    """Gain over pretrained against the ColD Fusion iteration, per chain (seen and unseen chains apart by label),
    with 95% t-intervals and n; the gain of one-shot fusion over the same pool is drawn as a line to compare."""
    chains = [c for c in summary.cold if c.iterations]
    if not chains:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
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
    ax.set_title("ColD Fusion: gain over pretrained per iteration (95% CI over targets)", fontsize="small")
    ax.legend(fontsize="x-small")
    return _save(fig, path)


FIGURES = (("gains_per_target.png", "Gain over pretrained per target", plot_target_gains),
           ("seed_std.png", "Seed sensitivity", plot_seed_std),
           ("weight_decay.png", "Weight decay", plot_weight_decay),
           ("gain_vs_n_models.png", "Gain vs number of models fused", plot_n_models),
           ("cold_iterations.png", "ColD Fusion: gain vs iteration", plot_cold_iterations))
