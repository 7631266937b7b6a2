"""Fusion-set selection on probe tasks: rank the candidates by their own linear-probe score, then add each, in that
order, to the fused set only if the fusion's probe score does not drop (a greedy soup, Wortsman et al. 2022).

The choice depends on results, so it runs before the targets are planned, in rounds: first every candidate's
probes, then one trial fusion per pool per round. Every round is a graph of ordinary jobs in the run directory
(keyed, stored, resumed, on any executor); what was chosen, and the whole curve, goes to RUN/selection.json.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from basefuse.errors import BasefuseError
from basefuse.experiments.config import ExperimentConfig, SelectionSettings
from basefuse.experiments.protocol import (CheckpointFacts, Plan, Selected, TaskFacts, add_sources, base_from,
                                           probe_job, selection_pools)

SELECTION_FILE = "selection.json"


# ---- the maths: pure ---------------------------------------------------------------------------------------

def rank(scores: Mapping[str, float]) -> list[str]:
    """Best first; ties go to the name (so the order never depends on the order results arrived in)."""
    return sorted(scores, key=lambda n: (-scores[n], n))


@dataclass(frozen=True)
class Step:
    """One step of the greedy curve: the candidate tried, the set with it, that set's probe score, and whether
    the candidate stayed (the first candidate always does)."""

    candidate: str
    members: tuple[str, ...]
    score: float
    accepted: bool


@dataclass
class Greedy:
    """The greedy soup over `ranked`, one trial at a time (trials of many pools can then run side by side)."""

    ranked: list[str]
    steps: list[Step] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.steps) == len(self.ranked)

    def trial(self) -> tuple[str, ...]:
        """The set to score next: the first candidate alone, then the set so far plus the next candidate."""
        return self.chosen() + (self.ranked[len(self.steps)],)

    def chosen(self) -> tuple[str, ...]:
        return next((s.members for s in reversed(self.steps) if s.accepted), ())

    def record(self, score: float) -> Step:
        """The trial's score: it stays if it is at least the set's so far ("does not drop"); the first always."""
        members = self.trial()
        accepted = [s.score for s in self.steps if s.accepted]
        step = Step(members[-1], members, score, not accepted or score >= accepted[-1])
        self.steps.append(step)
        return step


def greedy(ranked: Sequence[str], score_of: Callable[[tuple[str, ...]], float]) -> list[Step]:
    """The whole greedy curve; `score_of(members)` is the probe score of the set (one member: itself)."""
    if not ranked:
        raise ValueError("no candidate to select from")
    g = Greedy(list(ranked))
    while not g.done:
        g.record(score_of(g.trial()))
    return g.steps


# ---- running it: rounds of jobs -----------------------------------------------------------------------------

RunRound = Callable[[Plan], None]  # runs every job of a plan that is not done yet (the runner's job machinery)
ReadScore = Callable[[str], float]  # probe job key -> its score (the selection's metric), from the store


def select(cfg: ExperimentConfig, facts: dict[str, TaskFacts], base: dict[str, str],
           checkpoints: dict[str, CheckpointFacts] | None, run_round: RunRound, read_score: ReadScore, *,
           settings: SelectionSettings | None = None,
           targets: Mapping[str, tuple[str, ...]] | None = None) -> tuple[dict[tuple[str, ...], Selected], dict[str, Any]]:
    """Run the selection for every candidate pool; returns what it chose per pool, and the record for
    RUN/selection.json (every candidate's score, each pool's ranking, greedy curve and chosen set).

    `settings`: the config's `selection` by default; `targets`: who each pool is for (default: every target's
    pool, `selection_pools`)."""
    sel = settings or cfg.selection
    assert sel is not None
    method = cfg.fusions()[0]
    targets = targets if targets is not None else selection_pools(cfg)
    pools = list(dict.fromkeys(targets.values()))

    def plan_scores(sets: list[tuple[str, ...]]) -> dict[tuple[str, ...], list[str]]:
        """Score each set (a candidate alone, or their fusion) on every probe task and seed: one round of jobs."""
        plan = Plan()
        add_sources(plan, cfg, facts, base, checkpoints)
        keys: dict[tuple[str, ...], list[str]] = {}
        for members in dict.fromkeys(sets):
            model, deps = base_from(plan, members, method, base)
            keys[members] = [probe_job(plan, cfg, facts, model, deps, task, seed,
                                       f"probe {'+'.join(members)} on {task} (seed {seed})").key
                             for task in sel.probe for seed in sel.seeds]
        plan.prune([k for ks in keys.values() for k in ks])
        run_round(plan)
        return keys

    def score(keys: list[str]) -> float:
        return sum(read_score(k) for k in keys) / len(keys)

    singles = plan_scores([(c,) for p in pools for c in p])  # round 0: every candidate on its own
    single_score = {members[0]: score(keys) for members, keys in singles.items()}
    state = {p: Greedy(rank({c: single_score[c] for c in p})) for p in pools}
    while not all(g.done for g in state.values()):
        todo = [g for g in state.values() if not g.done]
        keys = plan_scores([g.trial() for g in todo])
        for g in todo:
            g.record(score(keys[g.trial()]))
    selected = {key: Selected(best=g.ranked[0], chosen=g.chosen()) for key, g in state.items()}
    record = {"strategy": sel.strategy, "metric": sel.metric, "probe_tasks": list(sel.probe),
              "probe_seeds": list(sel.seeds), "method": method.method,
              "rule": ("candidates ranked by their mean probe score over the probe tasks and seeds (ties: by name); "
                       "each added, in that order, only if the fusion's mean probe score is at least that of the "
                       "set before it"),
              "candidate_scores": dict(sorted(single_score.items())),
              "pools": [{"candidates": list(key), "targets": sorted(t for t, q in targets.items() if q == key),
                         "ranking": g.ranked, "best_single": g.ranked[0], "chosen": list(g.chosen()),
                         "curve": [asdict(s) | {"members": list(s.members)} for s in g.steps]}
                        for key, g in state.items()]}
    return selected, record


def write_selection(run_dir: Path, record: Mapping[str, Any]) -> Path:
    from basefuse.io import write_json

    try:
        write_json(Path(run_dir) / SELECTION_FILE, dict(record))
    except OSError as e:
        raise BasefuseError(f"cannot write {Path(run_dir) / SELECTION_FILE}: {e.strerror or e}; choose a writable "
                            "--out") from None
    return Path(run_dir) / SELECTION_FILE
