"""Every comparison the report makes, computed from run records (pure; numbers in accuracy points).

Pairing: a run's *gain* is its accuracy minus the pretrained base's on the same (target, seed,
weight decay); two bases are compared on the (target, seed) cells both have. Several runs of
one label in one cell (e.g. intertraining from each source) are averaged first. Each target then
contributes its mean over seeds, and `stats` turns the per-target means into an interval and an
effect size. Only the five confirmatory claims (`confirmatory`, fixed before the data) carry a
p-value adjusted by Holm and a verdict; every comparison here is exploratory: an interval and an
effect size, no verdict word. `primary` names C1's two bases (`fused (all)` vs `pretrained`, or
the config's; never replaced by another when it has no runs).

Conditions are an open vocabulary: every base label with runs is a row of every table it belongs
in (`fused[ties] (all)` beside `fused (all)`, a kind this module has never heard of after the
known ones). ColD Fusion rows (`iteration` set) also get a table per chain, seen and unseen apart:
the gain per iteration, and each iteration beside one-shot fusion over the same pool on the same
targets and seeds (a cell averaged over the ColD chain seeds).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from basefuse.experiments.records import (GREEDY, POOLS, PRETRAINED, SEEN, RunRecord, base_label, condition_kind,
                                        condition_rank)
from basefuse.reports import confirmatory, stats
from basefuse.reports.claims import Claim
from basefuse.reports.stats import Estimate

DEFAULT_PRIMARY = ("fused (all)", PRETRAINED)

SeedCells = dict[str, dict[int, float]]  # target -> seed -> value


@dataclass
class Comparison:
    """`a` minus `b`, paired per target and seed."""

    a: str
    b: str
    est: Estimate | None
    per_target: dict[str, Estimate] = field(default_factory=dict)
    primary: bool = False
    kind: str = "vs pretrained"  # or "fused vs intertrained", "weight decay", "seed std", "models fused"
    values: dict[str, list[float]] = field(default_factory=dict)  # target -> per-seed differences

    @property
    def name(self) -> str:
        return f"{self.a} vs {self.b}"

    @property
    def verdict(self) -> str:
        return stats.verdict(self.est)

    def target_verdict(self, target: str) -> str:
        return stats.seed_verdict(self.per_target.get(target))


@dataclass
class Spread:
    """How much a base's gain depends on the target: std across targets of per-target mean gains."""

    label: str
    n_targets: int
    seeds: tuple[int, int]
    std: float | None  # no interval: the chi-square one under-covers skewed gains (docs/statistics.md); C3 tests
    helped: int  # targets with a positive mean gain


@dataclass
class WeightDecayRow:
    label: str
    gains: dict[float, Comparison]  # weight decay -> gain over pretrained at that weight decay
    difference: Comparison | None  # gain at the highest weight decay minus gain at the lowest


@dataclass
class SeedStdRow:
    """Seed std of a base and of pretrained over the same targets and seeds, and their paired difference."""

    label: str
    n_targets: int
    seeds: tuple[int, int]
    std: float | None  # means over targets, no interval: a bootstrap of them under-covers (docs/statistics.md)
    reference_std: float | None
    difference: Comparison | None


@dataclass
class NModelsPoint:
    n_fused: int
    gain: Comparison
    subsets: tuple[int, int]  # fewest and most distinct subsets per target
    n_runs: int
    condition: str = "fused"  # one curve per fusion condition (e.g. fused, fused[ties])


@dataclass
class ColdBeside:
    """One ColD iteration beside one-shot fusion over the same pool, on the (target, seed) cells (and chain seeds)
    that the iteration, the one-shot fusion and pretrained all have: both gains, shown for reading, and their
    paired difference."""

    iteration_gain: Comparison
    one_shot_gain: Comparison
    difference: Comparison
    chain_seeds: tuple[int, int]  # fewest and most chain seeds averaged in a (target, seed) cell


@dataclass
class ColdChain:
    """One ColD Fusion chain: a condition and pool, e.g. "cold (other families)" or "cold (seen)".

    `setting` is "unseen" (no target contributed to its chain) or "seen" (the ColD paper's main setting: the
    chain draws on every source, the target's own train split included). `iterations` holds the gain over
    pretrained of each iteration's shared model: the very rows of `Summary.vs_pretrained` (so they are tested
    once). `one_shot` is one-shot fusion over the same pool with the same method and chain seeds (with every
    source contributing, iteration 1 is that very fusion); `beside[t]` sets iteration t beside it on the same
    cells. `tested` (the last iteration minus one-shot: does iterating add to fusing once?) is the chain's row in
    `Summary.exploratory` (an interval, no verdict: only C1-C5 are tested). A (target, seed) cell is the mean over the chain seeds both bases have there;
    `chain_seeds` lists every chain seed in the chain's runs.
    """

    label: str
    iterations: dict[int, Comparison]
    one_shot: str  # one-shot fusion over the same pool, e.g. "fused (other families)"
    setting: str = "unseen"
    pool: str = ""  # which sources, in words
    one_shot_gain: Comparison | None = None  # the one-shot fusion's row of `Summary.vs_pretrained`
    beside: dict[int, ColdBeside] = field(default_factory=dict)
    tested: Comparison | None = None
    chain_seeds: tuple[int, ...] = ()


@dataclass
class Summary:
    """Everything the renderers show; built by `summarize`."""

    weight_decay: float
    weight_decays: list[float]
    families: list[str]
    targets: list[str]
    target_family: dict[str, str]
    labels: list[str]
    table1: dict[str, dict[str, float | None]]
    primary: tuple[str, str]
    vs_pretrained: list[Comparison]
    vs_intertrained: list[Comparison]
    spread: list[Spread]
    weight_decay_rows: list[WeightDecayRow]
    seed_std: list[SeedStdRow]
    n_models: list[NModelsPoint]
    cold: list[ColdChain]
    n_records: int
    unpaired: int
    confirmatory: confirmatory.Confirmatory | None = None
    table1_f1: dict[str, dict[str, float | None]] = field(default_factory=dict)  # Table 1 in macro-F1 points
    vs_pretrained_f1: list[Comparison] = field(default_factory=list)  # gains in macro-F1 points
    per_target_acc: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> target -> mean accuracy
    seed_std_ratio: list[Comparison] = field(default_factory=list)  # per label: log seed-std ratio vs pretrained
    vs_method: list[Comparison] = field(default_factory=list)  # each fusion method vs `fused`, same sources

    @property
    def claims(self) -> list[Claim]:
        """C1..C5, the only rows with a verdict (empty only for a summary built without records)."""
        return self.confirmatory.claims if self.confirmatory else []

    @property
    def primary_comparison(self) -> Comparison | None:
        """The exploratory row with C1's two bases (its interval and effect size; C1 itself is in `claims`)."""
        return next((c for c in self.vs_pretrained + self.vs_intertrained if c.primary), None)

    def exploratory(self) -> list[Comparison]:
        """Every comparison row besides C1's twin: an interval and an effect size, no verdict."""
        rows = [c for c in self.vs_pretrained + self.vs_intertrained if not c.primary]
        # the gain at the tables' weight decay is already a row of vs_pretrained: counted once
        rows += [c for w in self.weight_decay_rows for wd, c in w.gains.items() if wd != self.weight_decay]
        rows += [w.difference for w in self.weight_decay_rows if w.difference]
        rows += [s.difference for s in self.seed_std if s.difference]
        rows += [p.gain for p in self.n_models]
        rows += [c.tested for c in self.cold if c.tested]
        rows += self.vs_method
        return rows


def label_order(label: str, condition: str, source_family: str | None, iteration: int | None = None) -> tuple:
    """Conditions in the records' display order (unknown ones last, by name); per condition the families
    alphabetically with "all" last, then the iterations in numeric order."""
    return (condition_rank(condition), source_family == "all", source_family or "", iteration or 0, label)


def seed_cells(records: Sequence[RunRecord], metric: str = "accuracy") -> dict[str, SeedCells]:
    """label -> target -> seed -> mean `metric` (points) of that cell's runs."""
    cells: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for r in records:
        cells[(r.base_label, r.target, r.seed)].append(100 * getattr(r, metric))
    out: dict[str, SeedCells] = defaultdict(lambda: defaultdict(dict))
    for (label, target, seed), vs in cells.items():
        out[label][target][seed] = float(np.mean(vs))
    return out


def paired_differences(a: SeedCells, b: SeedCells) -> dict[str, list[float]]:
    """target -> [a - b for each seed both have]; targets without a shared seed are left out."""
    return {t: list(v.values()) for t, v in gain_cells(a, b).items()}


def gain_cells(a: SeedCells, b: SeedCells) -> SeedCells:
    """target -> seed -> a - b, on the seeds both have."""
    return {t: {s: a[t][s] - b[t][s] for s in sorted(set(a[t]) & set(b.get(t, {})))}
            for t in a if set(a[t]) & set(b.get(t, {}))}


def _pretrained_acc(records: Sequence[RunRecord]) -> dict[tuple[str, int, float], float]:
    """(target, seed, weight decay) -> pretrained accuracy (points), the reference of every gain."""
    cells: dict[tuple[str, int, float], list[float]] = defaultdict(list)
    for r in records:
        if r.condition == PRETRAINED:
            cells[(r.target, r.seed, r.weight_decay)].append(100 * r.accuracy)
    return {k: float(np.mean(v)) for k, v in cells.items()}


def compare(a: str, b: str, diffs: Mapping[str, Sequence[float]], *, kind: str,
            primary: bool = False) -> Comparison:
    per_target = {t: e for t, v in diffs.items() if (e := stats.seed_estimate(v)) is not None}
    return Comparison(a, b, stats.estimate(diffs), per_target, primary, kind,
                      {t: list(v) for t, v in diffs.items()})


def _mean_over_targets(cells: SeedCells, targets: Sequence[str]) -> float | None:
    means = [float(np.mean(list(cells[t].values()))) for t in targets if cells.get(t)]
    return float(np.mean(means)) if means else None


def _table1(acc: Mapping[str, SeedCells], labels: Sequence[str], families: Sequence[str],
            targets: Sequence[str], target_family: Mapping[str, str]) -> dict[str, dict[str, float | None]]:
    table = {}
    for label in labels:
        cells = acc.get(label, {})
        row = {fam: _mean_over_targets(cells, [t for t in targets if target_family[t] == fam]) for fam in families}
        # A mean over a subset of the targets is not comparable with pretrained's mean over all of them.
        row["mean"] = _mean_over_targets(cells, targets) if all(cells.get(t) for t in targets) else None
        table[label] = row
    return table


def _spread(c: Comparison) -> Spread:
    means = [e.mean for e in c.per_target.values()]
    return Spread(c.a, len(means), c.est.seeds, float(np.std(means, ddof=1)) if len(means) >= 2 else None,
                  sum(m > 0 for m in means))


def _seed_std_row(label: str, acc: Mapping[str, SeedCells]) -> SeedStdRow:
    """Seed std of `label` and of pretrained over the targets (and seeds) where both have >= 2 seeds."""
    mine, ref = acc.get(label, {}), acc.get(PRETRAINED, {})
    per_target: dict[str, tuple[float, float]] = {}
    sizes = []
    for target in mine:
        shared = sorted(set(mine[target]) & set(ref.get(target, {})))
        if len(shared) >= 2:
            per_target[target] = (float(np.std([mine[target][s] for s in shared], ddof=1)),
                                  float(np.std([ref[target][s] for s in shared], ddof=1)))
            sizes.append(len(shared))
    if not per_target:
        return SeedStdRow(label, 0, (0, 0), None, None, None)
    a = [v[0] for v in per_target.values()]
    b = [v[1] for v in per_target.values()]
    diff = compare(f"{label} seed std", "pretrained seed std", {t: [v[0] - v[1]] for t, v in per_target.items()}, kind="seed std")
    return SeedStdRow(label, len(a), (min(sizes), max(sizes)), float(np.mean(a)), float(np.mean(b)), diff)


def _n_models(records: Sequence[RunRecord], pre: Mapping[tuple[str, int, float], float]) -> list[NModelsPoint]:
    """One point per (condition, number of models): fusion methods are separate curves, never pooled."""
    rows = [r for r in records if r.ablation == "n_models" and r.n_fused is not None]
    points = []
    for cond, k in sorted({(r.condition, r.n_fused) for r in rows}, key=lambda ck: (condition_rank(ck[0]), ck[1])):
        gains: dict[str, list[float]] = defaultdict(list)
        subsets: dict[str, set] = defaultdict(set)
        for r in rows:
            p = pre.get((r.target, r.seed, r.weight_decay))
            if r.condition == cond and r.n_fused == k and p is not None:
                gains[r.target].append(100 * r.accuracy - p)
                subsets[r.target].add(tuple(r.sources))
        if gains:
            sizes = [len(s) for s in subsets.values()]
            points.append(NModelsPoint(k, compare(f"{cond} ({k} models)", PRETRAINED, gains, kind="models fused"),
                                       (min(sizes), max(sizes)), sum(map(len, gains.values())), cond))
    return points


ChainCells = dict[tuple[str, int], dict[int, float]]  # (target, seed) -> chain seed -> mean accuracy (points)


def _chain_cells(records: Sequence[RunRecord], label: str) -> ChainCells:
    cells: dict[tuple[str, int, int | None], list[float]] = defaultdict(list)
    for r in records:
        if r.base_label == label:
            cells[(r.target, r.seed, r.chain_seed)].append(100 * r.accuracy)
    out: ChainCells = defaultdict(dict)
    for (target, seed, c), vs in cells.items():
        out[(target, seed)][-1 if c is None else c] = float(np.mean(vs))
    return out


def _cold_beside(a: ChainCells, b: ChainCells, pre: SeedCells, names: tuple[str, str]) -> ColdBeside | None:
    """`a` (an iteration) beside `b` (one-shot fusion) on the cells both and pretrained have, each cell the mean
    over the chain seeds both have there."""
    gain_a: dict[str, list[float]] = defaultdict(list)
    gain_b: dict[str, list[float]] = defaultdict(list)
    diff: dict[str, list[float]] = defaultdict(list)
    per_cell = []
    for (t, s), by_chain in sorted(a.items()):
        shared = sorted(set(by_chain) & set(b.get((t, s), {})))
        if not shared or s not in pre.get(t, {}):
            continue
        va, vb = (float(np.mean([x[c] for c in shared])) for x in (by_chain, b[(t, s)]))
        gain_a[t].append(va - pre[t][s])
        gain_b[t].append(vb - pre[t][s])
        diff[t].append(va - vb)
        per_cell.append(len(shared))
    if not diff:
        return None
    kind = "ColD vs one-shot"
    return ColdBeside(compare(names[0], PRETRAINED, gain_a, kind=kind),
                      compare(names[1], PRETRAINED, gain_b, kind=kind),
                      compare(names[0], names[1], diff, kind=kind), (min(per_cell), max(per_cell)))


def _cold_chains(main: Sequence[RunRecord], acc: Mapping[str, SeedCells], vs_pre: Sequence[Comparison]) -> list[ColdChain]:
    """Per ColD Fusion chain (condition and pool; seen and unseen apart): its vs-pretrained rows by iteration,
    and each iteration beside one-shot fusion of the same method over the same pool (`cold@2 (other families)`
    beside `fused (other families)`, `cold[ties]@2 (seen)` beside `fused[ties] (seen)`)."""
    by_label = {c.a: c for c in vs_pre}
    chains: dict[tuple[str, str | None], set[int]] = defaultdict(set)
    chain_seeds: dict[tuple[str, str | None], set[int]] = defaultdict(set)
    for r in main:
        if r.iteration is not None:
            chains[(r.condition, r.source_family)].add(r.iteration)
            if r.chain_seed is not None:
                chain_seeds[(r.condition, r.source_family)].add(r.chain_seed)
    out = []
    pre = acc.get(PRETRAINED, {})
    for i, ((cond, fam), its) in enumerate(sorted(chains.items(), key=lambda kv: (
            kv[0][1] == SEEN, condition_rank(kv[0][0]), kv[0][1] or ""))):
        rows = {t: by_label[lab] for t in sorted(its) if (lab := base_label(cond, fam, t)) in by_label}
        one_shot = base_label("fused" + cond[len(condition_kind(cond)):], fam)
        chain = ColdChain(base_label(cond, fam), rows, one_shot, "seen" if fam == SEEN else "unseen",
                          POOLS.get(fam or "", fam or ""), by_label.get(one_shot),
                          chain_seeds=tuple(sorted(chain_seeds[(cond, fam)])))
        shot = _chain_cells(main, one_shot)
        for t in sorted(its):
            name = base_label(cond, fam, t)
            b = _cold_beside(_chain_cells(main, name), shot, pre, (name, one_shot))
            if b is not None:
                chain.beside[t] = b
        if chain.beside:
            chain.tested = chain.beside[max(chain.beside)].difference
        out.append(chain)
    return out


def _seed_std_ratio(label: str, acc: Mapping[str, SeedCells]) -> Comparison | None:
    """Exploratory: per target log(seed std of `label` / of pretrained) over shared seeds (>= 2), mean over targets."""
    mine, ref = acc.get(label, {}), acc.get(PRETRAINED, {})
    logs = {}
    for t in mine:
        shared = sorted(set(mine[t]) & set(ref.get(t, {})))
        if len(shared) >= 2:
            logs[t] = [stats.log_std_ratios([float(np.std([mine[t][s] for s in shared], ddof=1))],
                                            [float(np.std([ref[t][s] for s in shared], ddof=1))])[0]]
    return compare(label, PRETRAINED, logs, kind="seed std ratio") if logs else None


def summarize(records: Sequence[RunRecord], *, weight_decay: float | None = None,
              primary: tuple[str, str] | None = None,
              plan: confirmatory.Plan | None = None) -> Summary:
    """Compute every table of the report. `weight_decay` defaults to the lowest one present; `plan` (the config's
    confirmatory plan) defaults to C1 = `primary` with the rest of the paper's defaults."""
    main = [r for r in records if r.ablation == "main"]
    wds = sorted({r.weight_decay for r in main})
    if not wds:
        raise ValueError("no main-ablation records to summarise")
    wd = min(wds) if weight_decay is None else weight_decay
    primary = tuple(primary) if primary else plan.c1 if plan else DEFAULT_PRIMARY
    if plan is None:
        plan = confirmatory.Plan(primary[0], c1_reference=primary[1] if primary[1] != PRETRAINED else None)

    families: list[str] = []
    target_family: dict[str, str] = {}
    for r in records:
        target_family.setdefault(r.target, r.target_family)
        if r.target_family not in families:
            families.append(r.target_family)
    targets = sorted(target_family, key=lambda t: (families.index(target_family[t]), t))
    meta = {r.base_label: (r.condition, r.source_family if r.condition != PRETRAINED else None, r.iteration)
            for r in main}
    labels = sorted(meta, key=lambda lab: label_order(lab, *meta[lab]))
    others = [lab for lab in labels if lab != PRETRAINED]

    acc_at = {w: seed_cells([r for r in main if r.weight_decay == w]) for w in wds}
    acc = acc_at[wd]

    def vs(a: str, b: str, cells: Mapping[str, SeedCells], kind: str, i: int) -> Comparison:
        return compare(a, b, paired_differences(cells.get(a, {}), cells.get(b, {})), kind=kind,
                       primary=(a, b) == primary)

    vs_pre = [vs(lab, PRETRAINED, acc, "vs pretrained", i) for i, lab in enumerate(others)]
    vs_pre = [c for c in vs_pre if c.est is not None]
    vs_inter = []
    for lab in others:
        if meta[lab][0] != "intertrained":
            continue
        # every fusion method's base over the intertrained source's family, then over all sources
        fusions = [f for f in others if condition_kind(meta[f][0]) == "fused"]
        for fused in sorted((f for f in fusions if meta[f][1] in (meta[lab][1], "all")),
                            key=lambda f: (meta[f][1] == "all", condition_rank(meta[f][0]))):
            if fused in acc and not any(c.a == fused and c.b == lab for c in vs_inter):
                c = vs(fused, lab, acc, "fused vs intertrained", 100 + len(vs_inter))
                if c.est is not None:
                    vs_inter.append(c)
    vs_method = []  # several fusion methods over the same sources: each against plain averaging (`fused`)
    fused_labels = [f for f in others if condition_kind(meta[f][0]) == "fused" and meta[f][0] != GREEDY]
    for group in dict.fromkeys(meta[f][1] for f in fused_labels):
        same = sorted((f for f in fused_labels if meta[f][1] == group), key=lambda f: condition_rank(meta[f][0]))
        for lab in same[1:]:
            c = vs(lab, same[0], acc, "fusion method", 300 + len(vs_method))
            if c.est is not None:
                vs_method.append(c)
    if primary[1] != PRETRAINED and not any(c.primary for c in vs_inter) and primary[0] in acc:
        c = vs(primary[0], primary[1], acc, "primary", 200)
        if c.est is not None:
            vs_inter.append(c)

    wd_rows = []
    if len(wds) > 1:
        lo_wd, hi_wd = wds[0], wds[-1]
        for i, lab in enumerate(others):
            cells = {w: gain_cells(acc_at[w].get(lab, {}), acc_at[w].get(PRETRAINED, {})) for w in wds}
            gains = {w: compare(f"{lab} at wd {w:g}", PRETRAINED, {t: list(v.values()) for t, v in c.items()}, kind="weight decay") for w, c in cells.items() if c}
            diff = paired_differences(cells[hi_wd], cells[lo_wd])
            difference = (compare(f"{lab} gain at wd {hi_wd:g}", f"gain at wd {lo_wd:g}", diff,
                                  kind="weight decay") if diff else None)
            if gains:
                wd_rows.append(WeightDecayRow(lab, gains, difference))

    seed_rows = [_seed_std_row(lab, acc) for i, lab in enumerate(others)]
    pre_all = _pretrained_acc(records)
    summary = Summary(wd, wds, families, targets, target_family, labels,
                      _table1(acc, labels, families, targets, target_family), primary, vs_pre, vs_inter,
                      [_spread(c) for c in vs_pre], wd_rows, seed_rows,
                      _n_models(records, pre_all),
                      _cold_chains([r for r in main if r.weight_decay == wd], acc, vs_pre),
                      len(records),
                      sum(1 for r in records if r.condition != PRETRAINED
                          and (r.target, r.seed, r.weight_decay) not in pre_all))
    summary.confirmatory = confirmatory.confirm(records, plan, wd)
    f1 = seed_cells([r for r in main if r.weight_decay == wd], "macro_f1")
    summary.table1_f1 = _table1(f1, labels, families, targets, target_family)
    summary.vs_pretrained_f1 = [c for i, lab in enumerate(others)
                                if (c := vs(lab, PRETRAINED, f1, "vs pretrained (macro-F1)", 800 + i)).est is not None]
    summary.per_target_acc = {lab: {t: float(np.mean(list(v.values()))) for t, v in acc.get(lab, {}).items() if v}
                              for lab in labels}
    summary.seed_std_ratio = [c for i, lab in enumerate(others)
                              if (c := _seed_std_ratio(lab, acc)) is not None]
    summary.vs_method = vs_method
    return summary
