"""The confirmatory plan's five tests (C1-C5), one per claim of the paper, built from run records (pure).

Why a module of its own: the five tests are fixed before the data (config key `confirmatory`) and are the only rows
with a verdict; Holm's adjustment runs over them alone. Everything else the report shows is exploratory. The same
code sizes a plan before anything runs (`planned_claims`, from the planned runs) and tests it after
(`observed_claims`, from the results), so the dry run and the report cannot disagree on n.

Each target contributes one value per claim (its mean over the seeds both arms ran); the tests run over targets:
* C1, C2, C4: mean of per-target differences in points; `stats.mean_interval` / `stats.mean_p`.
* C3: spread over targets of the fused gains / that of the intertrained gains (both over pretrained), paired by
  target, the spread being the mean absolute deviation from the median; `stats.spread_ratio` and its interval and p
  (a skew-robust mean test of a per-target linearisation; nothing below `stats.MIN_TARGETS_SPREAD` targets).
* C5: per target log(seed std of fused / seed std of pretrained) over the seeds both ran; mean test on the logs,
  printed back as a ratio (1 = equal).
"Better" is the paper's direction: a positive mean for C1, C2 and C4, a ratio below 1 for C3 and C5.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from basefuse.experiments.records import PRETRAINED, RunRecord
from basefuse.reports import stats
from basefuse.reports.claims import NOT_MEASURED, Claim

N_CLAIMS = 5
PLANNED = "planned"
Cells = dict[str, dict[int, float]]  # target -> seed -> points (mean of that cell's runs)


@dataclass(frozen=True)
class Plan:
    """What the config fixed before the data (`confirmatory:`; see experiments/config.py)."""

    fused: str = "fused (all)"
    pretrained: str = PRETRAINED
    intertrained: str = "intertrained"  # a condition: every run of it in a (target, seed) cell is averaged
    assumed_target_sd: float = 2.25
    alpha: float = stats.ALPHA
    c1_reference: str | None = None  # C1's other base when the deprecated `primary` names one besides pretrained
    # what the config planned, so a claim that is not measured says whether the config or the data is why
    config_weight_decays: int | None = None
    config_intertrained: bool | None = None
    declared: bool = False  # the config names the plan (`confirmatory` or `primary`); else the defaults apply

    @property
    def c1(self) -> tuple[str, str]:
        return self.fused, self.c1_reference or self.pretrained


def plan_from_config(cfg) -> Plan:  # cfg: basefuse.experiments.config.ExperimentConfig
    """The plan of a validated config; `primary` (deprecated) still names C1's two bases."""
    a, b = cfg.primary_comparison()
    c = cfg.confirmatory
    return Plan(a, c.pretrained, c.intertrained, c.assumed_target_sd, c.alpha,
                b if b != c.pretrained else None, len(cfg.weight_decays),
                any(cond.split("[", 1)[0] == c.intertrained for cond in cfg.conditions),
                bool({"confirmatory", "primary"} & cfg.model_fields_set))


TITLES = {
    "C1": ("fused vs pretrained", "Fusing finetuned models gives a base whose finetuning results surpass the "
           "pretrained model's (abstract, claim 1; Table 1: +2.3 points on average)."),
    "C2": ("fused vs intertrained", "Fusing is often better than intertraining (abstract, claim 2)."),
    "C3": ("dependence on the target", "Fusing is less dependent on the target task (abstract, claim 3)."),
    "C4": ("weight decay", "Weight decay nullifies intertraining's effect but not fusing's (abstract, claim 4; "
           "Table 2)."),
    "C5": ("seed sensitivity", "The fused base is less sensitive to the finetuning seed (Table 3: seed std 3.64 "
           "pretrained, 1.21 to 2.27 fused)."),
}

METHODS = {
    "C1": "mean over targets of the per-target mean gain; hull of the Student-t and Hall intervals, the larger of "
          "their two p-values (stats.mean_interval/mean_p); assumes independent targets",
    "C2": "per target, fused minus the mean of its intertrained runs (averaged per seed first), paired by seed; "
          "mean test as C1",
    "C3": "mean absolute deviation from the median over targets of fused's per-target gains / that of "
          "intertrained's, paired by target; log ratio with the skew-robust mean interval and test of its per-target "
          f"linearisation (stats.spread_ratio_interval/p); nothing below {stats.MIN_TARGETS_SPREAD} targets; no "
          "power formula, so no detectable effect",
    "C4": "per target [(fused - pretrained) at the highest weight decay - at the lowest] - [(intertrained - "
          "pretrained) likewise]; mean test as C1; detectable effect assumes the same per-target SD as C1",
    "C5": f"per target log((seed std fused + {stats.SEED_STD_FLOOR:g}) / (seed std pretrained + "
          f"{stats.SEED_STD_FLOOR:g})) over shared seeds; mean test on "
          "the logs, shown as a ratio; planned detectable effect from the SD of a log std ratio with that many "
          "normal seeds (stats.log_std_ratio_sd)",
}


# ---- cells and per-target values ----------------------------------------------------------------

def cells(records: Iterable[RunRecord], keep: Callable[[RunRecord], bool], weight_decay: float,
          metric: str = "accuracy") -> Cells:
    """target -> seed -> mean `metric` (points) of the kept main-grid runs at `weight_decay`."""
    acc: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in records:
        if r.ablation == "main" and r.weight_decay == weight_decay and keep(r):
            acc[(r.target, r.seed)].append(100 * getattr(r, metric))
    out: Cells = defaultdict(dict)
    for (t, s), v in acc.items():
        out[t][s] = float(np.mean(v))
    return dict(out)


def diff_cells(a: Cells, b: Cells) -> Cells:
    """target -> seed -> a - b on the seeds both have; targets without a shared seed are left out."""
    return {t: {s: a[t][s] - b[t][s] for s in sorted(set(a[t]) & set(b[t]))}
            for t in a if t in b and set(a[t]) & set(b[t])}


def target_means(c: Cells) -> dict[str, float]:
    return {t: float(np.mean(list(v.values()))) for t, v in c.items()}


def _seeds(*cs: Cells) -> tuple[int, int]:
    sizes = [len(v) for c in cs for v in c.values()]
    return (min(sizes), max(sizes)) if sizes else (0, 0)


@dataclass
class Arms:
    """The cells the five tests read, at the tables' weight decay and at the lowest/highest one."""

    fused: dict[float, Cells]
    pretrained: dict[float, Cells]
    intertrained: dict[float, Cells]
    c1_reference: dict[float, Cells]  # pretrained, unless the deprecated `primary` names another base
    weight_decay: float
    weight_decays: list[float]


def arms(records: Sequence[RunRecord], plan: Plan, weight_decay: float | None = None) -> Arms:
    wds = sorted({r.weight_decay for r in records if r.ablation == "main"})
    wd = (wds[0] if wds else 0.0) if weight_decay is None else weight_decay
    pick = {
        "fused": lambda r: r.base_label == plan.fused,
        "pretrained": lambda r: r.base_label == plan.pretrained,
        # each target's OWN intertrained base (its family's source): with `family_bases: every` a target also has
        # intertrained bases from the other families, which the claim is not about
        "intertrained": lambda r: r.condition == plan.intertrained and r.source_family == r.target_family,
        "c1_reference": lambda r: r.base_label == plan.c1[1],
    }
    return Arms(*({w: cells(records, keep, w) for w in wds} for keep in pick.values()), wd, wds)


def noise_sd(c: Cells) -> float | None:
    """The SD across targets that seed noise alone gives the per-target means: sqrt(mean_t s_t^2 / k_t)."""
    terms = [float(np.var(list(v.values()), ddof=1)) / len(v) for v in c.values() if len(v) >= 2]
    return math.sqrt(float(np.mean(terms))) if terms else None


@dataclass
class Values:
    """One claim's per-target values before any test, or the reason it cannot be measured."""

    values: dict[str, float]
    seeds: tuple[int, int]
    reason: str | None = None  # set: not measured
    other: dict[str, float] | None = None  # C3: intertrained's per-target gains (`values` holds fused's)
    noise: tuple[float | None, float | None] | None = None  # C3: seed-noise SD of fused's and intertrained's gains


def claim_values(a: Arms, plan: Plan) -> dict[str, Values]:
    """C1..C5's per-target values (C5 in logs); a claim the records cannot address carries its reason."""
    wd = a.weight_decay
    f, p, i = a.fused.get(wd, {}), a.pretrained.get(wd, {}), a.intertrained.get(wd, {})
    out: dict[str, Values] = {}
    no_fused = f"no {plan.fused!r} runs" if not f else None
    no_pre = f"no {plan.pretrained!r} runs" if not p else None
    no_inter = None
    if not i:
        no_inter = (f"no {plan.intertrained} runs in this config" if plan.config_intertrained is False
                    else f"no {plan.intertrained} runs from a target's own family among the reported results")

    fp = diff_cells(f, p)
    ref = a.c1_reference.get(wd, {})
    f_ref = diff_cells(f, ref)
    out["C1"] = Values(target_means(f_ref), _seeds(f_ref), no_fused or (f"no {plan.c1[1]!r} runs" if not ref else None))
    fi = diff_cells(f, i)
    out["C2"] = Values(target_means(fi), _seeds(fi), no_fused or no_inter)

    ip = diff_cells(i, p)
    shared = sorted(set(fp) & set(ip))
    gf, gi = target_means({t: fp[t] for t in shared}), target_means({t: ip[t] for t in shared})
    out["C3"] = Values(gf, _seeds(*({t: c[t] for t in shared} for c in (fp, ip))), no_fused or no_pre or no_inter,
                       gi, (noise_sd({t: fp[t] for t in shared}), noise_sd({t: ip[t] for t in shared})))

    if len(a.weight_decays) < 2:
        planned = plan.config_weight_decays
        out["C4"] = Values({}, (0, 0), "one weight decay in this config" if planned == 1
                           else "one weight decay among the reported results" + (
                               f" (the config has {planned})" if planned else ""))
    else:
        lo, hi = a.weight_decays[0], a.weight_decays[-1]
        g = {(arm, w): diff_cells(cs.get(w, {}), a.pretrained.get(w, {}))
             for arm, cs in (("f", a.fused), ("i", a.intertrained)) for w in (lo, hi)}
        ts = sorted(set.intersection(*(set(c) for c in g.values())))
        m = {k: target_means(c) for k, c in g.items()}
        did = {t: (m["f", hi][t] - m["f", lo][t]) - (m["i", hi][t] - m["i", lo][t]) for t in ts}
        out["C4"] = Values(did, _seeds(*({t: c[t] for t in ts} for c in g.values())),
                           no_fused or no_pre or no_inter)

    ratios, sizes = {}, []
    for t in sorted(set(f) & set(p)):
        common = sorted(set(f[t]) & set(p[t]))
        if len(common) >= 2:
            sd_f = float(np.std([f[t][s] for s in common], ddof=1))
            sd_p = float(np.std([p[t][s] for s in common], ddof=1))
            ratios[t] = stats.log_std_ratios([sd_f], [sd_p])[0]
            sizes.append(len(common))
    one_seed = None
    if not ratios and not (no_fused or no_pre):
        one_seed = ("one seed per target: no seed std" if all(len(c) < 2 for arm in (f, p) for c in arm.values())
                    else "no target has 2 seeds that both bases ran: no paired seed std")
    out["C5"] = Values(ratios, (min(sizes), max(sizes)) if sizes else (0, 0), no_fused or no_pre or one_seed)
    for k, v in out.items():
        if v.reason is None and not v.values:
            out[k] = replace(v, reason=f"no target has both arms ({'weight decays' if k == 'C4' else 'shared seeds'})")
    return out


# ---- reachability and power ------------------------------------------------------------------------

def reachability(cid: str, n: int, alpha: float) -> tuple[bool, str]:
    """Can n targets give p_holm < alpha at all? Every test is a t-based mean test with no floor on p once it has an
    interval: from MIN_TARGETS targets (MIN_TARGETS_SPREAD for C3's spread ratio)."""
    if cid == "C3" and n < stats.MIN_TARGETS_SPREAD:
        return False, (f"cannot reach a verdict at n = {n}: the spread ratio needs {stats.MIN_TARGETS_SPREAD} "
                       "targets")
    if n < stats.MIN_TARGETS:
        return False, f"cannot reach a verdict at n = {n}: an interval needs {stats.MIN_TARGETS} targets"
    return True, f"reachable: the t-based test has no floor at n = {n}"


def detectable(cid: str, n: int, sd: float | None, seeds: int, alpha: float, *, planned: bool) -> float | None:
    """Smallest true effect found with 80% power at level alpha (Holm's last step, so an upper bound on power).

    Points for C1, C2, C4 (per-target SD `sd`); a ratio below 1 for C5 (planned: the SD of one target's log std
    ratio with `seeds` seeds; observed: the SD of the log ratios); None for C3 (no power formula)."""
    if cid == "C3":
        return None
    if cid == "C5":
        spread = stats.log_std_ratio_sd(seeds) if planned and seeds >= 2 else sd
        d = stats.detectable_effect(n, spread, alpha) if spread else None
        return math.exp(-d) if d is not None else None
    return stats.detectable_effect(n, sd, alpha) if sd else None


def _blank(cid: str, plan: Plan) -> Claim:
    title, paper = TITLES[cid]
    a, b, measure, scale = {
        "C1": (*plan.c1, "gain (points)" if plan.c1[1] == plan.pretrained else "difference (points)", "points"),
        "C2": (plan.fused, plan.intertrained, "fused - intertrained (points)", "points"),
        "C3": (plan.fused, plan.intertrained, "spread of gains over targets (mean absolute deviation from the "
               "median), fused / intertrained", "ratio"),
        "C4": (plan.fused, plan.intertrained, "difference in differences of gains, high - low weight decay "
               "(points)", "points"),
        "C5": (plan.fused, plan.pretrained, "seed std ratio, fused / pretrained", "ratio"),
    }[cid]
    return Claim(cid, title, paper, a, b, measure, scale, method=METHODS[cid])  # type: ignore[arg-type]


def planned_claims(values: dict[str, Values], plan: Plan) -> list[Claim]:
    """The plan before any run: n, reachability and the detectable effect at the assumed SD (values may be dummies:
    only their targets and seeds are read)."""
    out = []
    for cid, v in values.items():
        c = _blank(cid, plan)
        if v.reason:
            c.reason = f"{NOT_MEASURED}: {v.reason}"
            out.append(c)
            continue
        c.n, c.seeds, c.verdict = len(v.values), v.seeds, PLANNED
        c.reachable, c.reason = reachability(cid, c.n, plan.alpha)
        c.detectable_planned = detectable(cid, c.n, plan.assumed_target_sd, v.seeds[0], plan.alpha, planned=True)
        out.append(c)
    return out


def _test(cid: str, v: Values, level: float) -> tuple[float | None, tuple[float, float] | None, float | None,
                                                      float | None, float | None]:
    """(estimate, interval, p, effect size, SD of the values) on the claim's own scale."""
    x = list(v.values.values())
    sd = float(np.std(x, ddof=1)) if len(x) >= 2 else None
    mean = float(np.mean(x))
    ci, p, es = stats.mean_interval(x, level), stats.mean_p(x), stats.effect_size(x)
    if cid == "C5":
        return math.exp(mean), (math.exp(ci[0]), math.exp(ci[1])) if ci else None, p, es, sd
    return mean, ci, p, es, sd


def observed_claims(values: dict[str, Values], plan: Plan) -> list[Claim]:
    """The five tests on the data, Holm-adjusted over these five only, with their verdicts."""
    claims = planned_claims(values, plan)
    for c in claims:
        v = values[c.id]
        if v.reason:
            continue
        c.values = dict(v.values)
        if c.id == "C3":
            a, b = list(v.values.values()), [v.other[t] for t in v.values]  # type: ignore[index]
            c.estimate = stats.spread_ratio(a, b)
            c.interval = stats.spread_ratio_interval(a, b, 1 - plan.alpha)
            c.p = stats.spread_ratio_p(a, b)
        else:
            c.estimate, c.interval, c.p, c.effect_size, sd = _test(c.id, v, 1 - plan.alpha)
            c.detectable_observed = detectable(c.id, c.n, sd, v.seeds[0], plan.alpha, planned=False)
    adjusted = stats.holm({c.id: c.p for c in claims})
    for c in claims:
        c.p_holm = adjusted[c.id]
        if values[c.id].reason:
            c.verdict = NOT_MEASURED
        else:
            c.verdict = claim_verdict(c, plan.alpha)
            if not c.reachable:
                c.verdict = stats.INCONCLUSIVE
    return claims


def claim_verdict(c: Claim, alpha: float) -> str:
    """"better" in the paper's direction (mean above 0; ratio below 1) only when the interval excludes the null on
    that side and p_holm < alpha; "worse" mirrored; else "inconclusive"."""
    if c.interval is None or c.p_holm is None or c.p_holm >= alpha:
        return stats.INCONCLUSIVE
    lo, hi = c.interval
    if c.scale == "ratio":
        return stats.BETTER if hi < 1 else stats.WORSE if lo > 1 else stats.INCONCLUSIVE
    return stats.BETTER if lo > 0 else stats.WORSE if hi < 0 else stats.INCONCLUSIVE


@dataclass
class Confirmatory:
    """The five claims and what the report shows beside them (C3's seed-noise reference, descriptive)."""

    claims: list[Claim]
    c3_noise: tuple[float | None, float | None] | None  # seed-noise SD of fused's and intertrained's gains
    c3_intertrained: dict[str, float]  # intertrained's per-target gains (C3's `values` are fused's)
    plan: Plan


def confirm(records: Sequence[RunRecord], plan: Plan, weight_decay: float | None = None) -> Confirmatory:
    """C1..C5 from the records (the report's entry point)."""
    values = claim_values(arms(records, plan, weight_decay), plan)
    return Confirmatory(observed_claims(values, plan), values["C3"].noise, values["C3"].other or {}, plan)


def plan_claims(runs: Iterable, plan: Plan, weight_decay: float | None = None) -> list[Claim]:
    """The plan's claims from planned runs (anything with RunRecord's fields but no accuracy): for the dry run."""
    records = [RunRecord(**r.record_fields(), accuracy=0.0, macro_f1=0.0) for r in runs]
    return planned_claims(claim_values(arms(records, plan, weight_decay), plan), plan)
