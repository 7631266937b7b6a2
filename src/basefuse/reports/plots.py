"""PNG figures of the report (matplotlib with the Agg backend, imported only when plotting)."""
from __future__ import annotations

from pathlib import Path

from basefuse.reports.stats import PRETRAINED, Summary


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_target_gains(summary: Summary, path: Path) -> bool:
    """Grouped bars: gain over pretrained per target and base label, with seed-bootstrap 95% CIs."""
    labels = [lab for lab in summary.labels
              if summary.by_label[lab].condition != PRETRAINED and summary.by_label[lab].per_target]
    if not labels:
        return False
    plt = _pyplot()
    targets = summary.targets
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(targets) * max(1, len(labels)) ** 0.5 + 2), 4.2))
    for i, label in enumerate(labels):
        per = summary.by_label[label].per_target
        xs = [j + (i - (len(labels) - 1) / 2) * width for j, t in enumerate(targets) if t in per]
        ys = [per[t].mean for t in targets if t in per]
        err = [[per[t].mean - per[t].ci.lo for t in targets if t in per],
               [per[t].ci.hi - per[t].mean for t in targets if t in per]]
        ax.bar(xs, ys, width=width, yerr=err, capsize=2, label=label)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(targets)), targets, rotation=30, ha="right")
    ax.set_ylabel("gain over pretrained (accuracy points)")
    ax.set_title(f"Gain per target (weight decay {summary.weight_decay:g}); bars: 95% CI over seeds")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_n_models(summary: Summary, path: Path) -> bool:
    """Mean gain over pretrained against the number of source models fused, with 95% CI band."""
    pts = summary.n_models
    if not pts:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ns = [p.n_fused for p in pts]
    ax.plot(ns, [p.gain.mean for p in pts], marker="o", label="fused (random subsets)")
    ax.fill_between(ns, [p.gain.lo for p in pts], [p.gain.hi for p in pts], alpha=0.25, label="95% CI")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(ns)
    ax.set_xlabel("number of source models fused")
    ax.set_ylabel("gain over pretrained (points)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
