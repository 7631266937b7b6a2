"""The report's numbers: paired gains over the pretrained base, bootstrap CIs, the paper's tables.

Pure functions over `RunRecord`s; all numbers are in accuracy *points* (fraction x 100).

Statistical scheme (documented in the report's "how to read this" section):

* **Gain** of a run = its accuracy minus the pretrained base's accuracy on the same
  (target, seed, weight_decay): same data order and head initialisation, so the pairing
  removes most seed noise. Several runs of one base label on the same (target, seed) —
  e.g. intertraining from each source — are averaged first.
* **Mean gain** of a base label = mean over targets of the mean over seeds.
* **95% CI**: two-stage percentile bootstrap (default 2,000 resamples, seeded): resample
  targets with replacement, then each drawn target's seeds with replacement, recompute
  the mean gain; the CI is the 2.5th..97.5th percentile. Targets are the main source of
  variation we want to generalise over; seeds add the finetuning noise.
* **Win / tie / loss** per target: a win when the mean gain over seeds is at least
  `tie_threshold` points (default 0.5) *and* the seeds-only bootstrap CI lies above 0;
  a loss symmetrically; otherwise a tie.
* **Seed std** (the paper's Table 3): sample std (ddof=1) of accuracy over seeds per
  target, averaged over targets that have at least 2 seeds.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from basefuse.experiments.records import CONDITIONS, RunRecord

PRETRAINED = "pretrained"


@dataclass(frozen=True)
class CI:
    """A mean with its percentile-bootstrap confidence interval."""

    mean: float
    lo: float
    hi: float

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def bootstrap_mean_ci(groups: Mapping[str, Sequence[float]] | Sequence[Sequence[float]], *,
                      n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> CI:
    """Two-stage bootstrap CI of the mean over groups of the mean within each group.

    Groups are targets, values are per-seed gains. With one group this is the plain
    bootstrap over seeds.
    """
    values = [np.asarray(v, dtype=float) for v in (groups.values() if isinstance(groups, Mapping) else groups)]
    values = [v for v in values if v.size]
    if not values:
        raise ValueError("bootstrap_mean_ci needs at least one non-empty group")
    point = float(np.mean([v.mean() for v in values]))
    n_groups = len(values)
    sizes = np.array([v.size for v in values])
    padded = np.zeros((n_groups, sizes.max()))
    for i, v in enumerate(values):
        padded[i, : v.size] = v
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, size=(n_boot, n_groups))            # stage 1: which targets
    n = sizes[g]                                                     # their seed counts
    k = np.floor(rng.random((n_boot, n_groups, sizes.max())) * n[..., None]).astype(int)
    mask = np.arange(sizes.max()) < n[..., None]                     # ragged seed counts
    drawn = padded[g[..., None], np.where(mask, k, 0)]                # stage 2: which seeds
    stat = ((drawn * mask).sum(-1) / n).mean(-1)
    alpha = (1 - level) / 2 * 100
    lo, hi = np.percentile(stat, [alpha, 100 - alpha])
    return CI(point, float(lo), float(hi))


@dataclass
class TargetGain:
    mean: float
    ci: CI
    n_seeds: int
    outcome: str  # "win" | "tie" | "loss"


@dataclass
class LabelSummary:
    label: str
    condition: str
    source_family: str | None
    gain: CI | None = None
    per_target: dict[str, TargetGain] = field(default_factory=dict)
    wins: int = 0
    ties: int = 0
    losses: int = 0
    seed_std: float | None = None
    n_runs: int = 0


@dataclass
class NModelsPoint:
    n_fused: int
    gain: CI
    n_runs: int


@dataclass
class Summary:
    """Everything the renderers show; built by `summarize`."""

    weight_decay: float
    weight_decays: list[float]
    families: list[str]
    targets: list[str]
    target_family: dict[str, str]
    labels: list[str]
    by_label: dict[str, LabelSummary]
    table1: dict[str, dict[str, float | None]]            # label -> family/"mean" -> accuracy
    table2: dict[str, dict[float, tuple[float | None, float | None]]]  # label -> wd -> (acc, gain)
    n_models: list[NModelsPoint]
    n_records: int
    unpaired: int
    tie_threshold: float
    n_boot: int
    seed: int


def label_order(label: str, condition: str, source_family: str | None) -> tuple:
    """pretrained first, then fused, then intertrained; per family alphabetically, "all" last."""
    rank = CONDITIONS.index(condition) if condition in CONDITIONS else len(CONDITIONS)
    return (rank, source_family == "all", source_family or "", label)


def _mean(xs: Sequence[float]) -> float | None:
    return float(np.mean(xs)) if len(xs) else None


def _per_seed(records: Sequence[RunRecord], value) -> dict[str, dict[str, dict[int, float]]]:
    """label -> target -> seed -> mean of value(record) over that cell's runs."""
    cells: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for r in records:
        v = value(r)
        if v is not None:
            cells[(r.base_label, r.target, r.seed)].append(v)
    out: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for (label, target, seed), vs in cells.items():
        out[label][target][seed] = float(np.mean(vs))
    return out


def _pretrained_acc(records: Sequence[RunRecord]) -> dict[tuple[str, int, float], float]:
    cells: dict[tuple[str, int, float], list[float]] = defaultdict(list)
    for r in records:
        if r.condition == PRETRAINED:
            cells[(r.target, r.seed, r.weight_decay)].append(100 * r.accuracy)
    return {k: float(np.mean(v)) for k, v in cells.items()}


def _gain_fn(pre: dict[tuple[str, int, float], float]):
    def gain(r: RunRecord) -> float | None:
        p = pre.get((r.target, r.seed, r.weight_decay))
        return None if p is None else 100 * r.accuracy - p
    return gain


def _mean_over_targets(per_target: Mapping[str, Mapping[int, float]], targets: Sequence[str]) -> float | None:
    return _mean([float(np.mean(list(per_target[t].values()))) for t in targets if per_target.get(t)])


def summarize(records: Sequence[RunRecord], *, weight_decay: float | None = None, n_boot: int = 2000,
              seed: int = 0, tie_threshold: float = 0.5) -> Summary:
    """Compute every table of the report. `weight_decay` defaults to the lowest one present."""
    main = [r for r in records if r.ablation == "main"]
    wds = sorted({r.weight_decay for r in main})
    if not wds:
        raise ValueError("no main-ablation records to summarise")
    wd = min(wds) if weight_decay is None else weight_decay
    pre = _pretrained_acc(records)
    gain = _gain_fn(pre)

    families: list[str] = []
    target_family: dict[str, str] = {}
    for r in records:
        target_family.setdefault(r.target, r.target_family)
        if r.target_family not in families:
            families.append(r.target_family)
    targets = sorted(target_family, key=lambda t: (families.index(target_family[t]), t))

    meta = {r.base_label: (r.condition, r.source_family if r.condition != PRETRAINED else None) for r in main}
    labels = sorted(meta, key=lambda lab: label_order(lab, *meta[lab]))

    at_wd = [r for r in main if r.weight_decay == wd]
    acc = _per_seed(at_wd, lambda r: 100 * r.accuracy)
    gains = _per_seed([r for r in at_wd if r.condition != PRETRAINED], gain)

    by_label: dict[str, LabelSummary] = {}
    table1: dict[str, dict[str, float | None]] = {}
    for i, label in enumerate(labels):
        s = LabelSummary(label, *meta[label], n_runs=sum(r.base_label == label for r in at_wd))
        stds = [float(np.std(list(v.values()), ddof=1)) for v in acc.get(label, {}).values() if len(v) >= 2]
        s.seed_std = _mean(stds)
        per_target = {t: list(v.values()) for t, v in gains.get(label, {}).items() if v}
        if per_target:
            s.gain = bootstrap_mean_ci(per_target, n_boot=n_boot, seed=seed + i)
            for j, t in enumerate(t for t in targets if t in per_target):
                ci = bootstrap_mean_ci([per_target[t]], n_boot=n_boot, seed=seed + 1000 * (i + 1) + j)
                outcome = ("win" if ci.mean >= tie_threshold and ci.lo > 0 else
                           "loss" if ci.mean <= -tie_threshold and ci.hi < 0 else "tie")
                s.per_target[t] = TargetGain(ci.mean, ci, len(per_target[t]), outcome)
            s.wins, s.ties, s.losses = (sum(g.outcome == o for g in s.per_target.values())
                                        for o in ("win", "tie", "loss"))
        by_label[label] = s
        row = {fam: _mean_over_targets(acc.get(label, {}), [t for t in targets if target_family[t] == fam])
               for fam in families}
        # A mean over a subset of the targets is not comparable with pretrained's mean over all of them.
        covers_all = all(acc.get(label, {}).get(t) for t in targets)
        row["mean"] = _mean_over_targets(acc.get(label, {}), targets) if covers_all else None
        table1[label] = row

    table2: dict[str, dict[float, tuple[float | None, float | None]]] = {lab: {} for lab in labels}
    for w in wds:
        rows = [r for r in main if r.weight_decay == w]
        acc_w = _per_seed(rows, lambda r: 100 * r.accuracy)
        gain_w = _per_seed([r for r in rows if r.condition != PRETRAINED], gain)
        for label in labels:
            g = 0.0 if meta[label][0] == PRETRAINED else _mean_over_targets(gain_w.get(label, {}), targets)
            covers_all = all(acc_w.get(label, {}).get(t) for t in targets)
            table2[label][w] = (_mean_over_targets(acc_w.get(label, {}), targets) if covers_all else None,
                                g if label in acc_w else None)

    ablation = [r for r in records if r.ablation == "n_models" and r.n_fused is not None]
    n_models = []
    for n in sorted({r.n_fused for r in ablation}):
        rows = [r for r in ablation if r.n_fused == n]
        per_target: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            g = gain(r)
            if g is not None:
                per_target[r.target].append(g)
        if per_target:
            n_models.append(NModelsPoint(n, bootstrap_mean_ci(per_target, n_boot=n_boot, seed=seed + 7 * n),
                                         sum(map(len, per_target.values()))))

    unpaired = sum(1 for r in records if r.condition != PRETRAINED and gain(r) is None)
    return Summary(wd, wds, families, targets, target_family, labels, by_label, table1, table2, n_models,
                   len(records), unpaired, tie_threshold, n_boot, seed)
