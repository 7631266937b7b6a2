"""Property tests: no target's base has the target in its provenance, on random configs and random job graphs.

Provenance is recomputed here by its definition (a finetune adds its task to what its inputs were
trained on; a fusion is the union of its inputs), independently of `basefuse.experiments.leakage`.
"""
from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from basefuse.errors import BasefuseError
from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.jobs import make_job
from basefuse.experiments.leakage import LeakageError, TargetRun, TaskContent, check_provenance
from basefuse.experiments.protocol import TaskFacts, build_plan


def trained_on(jobs, key) -> set[str]:
    job = jobs[key]
    names = {job.params["task"]["name"]} if job.kind == "finetune" else set()
    for dep in job.deps:
        names |= trained_on(jobs, dep)
    return names


@st.composite
def configs(draw):
    n_fam = draw(st.integers(1, 3))
    families = {f"f{i}": [f"f{i}t{j}" for j in range(draw(st.integers(1, 4)))] for i in range(n_fam)}
    held = {"h": ["h0"]} if draw(st.booleans()) else {}
    names = [t for ts in (*families.values(), *held.values()) for t in ts]
    data = {
        "families": families, "held_out": held, "seeds": [0],
        "targets": draw(st.lists(st.sampled_from(names), min_size=1, unique=True)),
        "conditions": draw(st.lists(st.sampled_from(["pretrained", "fused", "intertrained"]), min_size=1,
                                    unique=True)),
        "fused_groups": draw(st.lists(st.sampled_from(["family", "all"]), min_size=1, unique=True)),
        "family_bases": draw(st.sampled_from(["every", "own"])),
        "intertrained": draw(st.sampled_from(["largest", "each"])),
        "allow_single_source_fusion": draw(st.booleans()),
        "n_models": {"enabled": draw(st.booleans()), "subsets": draw(st.integers(1, 2)),
                     "min_k": draw(st.integers(1, 2)), "within_family": draw(st.booleans())},
        "fusion": draw(st.sampled_from([{"method": "average"},
                                        [{"method": "average"}, {"method": "ties", "params": {"density": 0.5}}]])),
    }
    if draw(st.booleans()):  # ColD Fusion chains, one per family of targets
        data["cold_fusion"] = {"iterations": draw(st.integers(1, 3)),
                               "contributors": draw(st.sampled_from(["all", 1, 2])), "seed": draw(st.integers(0, 3))}
    sizes = {n: draw(st.integers(10, 50)) for n in names}
    return data, sizes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_no_target_is_finetuned_from_a_base_trained_on_it(case):
    data, sizes = case
    cfg = parse_experiment_config(data)
    facts = {n: TaskFacts(s, f"{n}-s", f"{n}-t", TaskContent(f"fp-{n}", (), frozenset())) for n, s in sizes.items()}
    try:
        plan = build_plan(cfg, facts, "base", "fp")
    except LeakageError as e:  # the protocol itself must never build a leaking plan
        raise AssertionError(f"a plan was refused for leakage: {e}") from None
    except BasefuseError:
        assume(False)  # a pool too small to fuse is a config error, not a finding
    jobs = plan.jobs
    for run in plan.runs:
        base = set().union(*(trained_on(jobs, d) for d in jobs[run.job_key].deps))
        assert run.target not in base
        assert base == set(run.sources)  # the base is trained on exactly the sources the report names
        assert plan.provenance[run.job_key] == base | {run.target}


@st.composite
def graphs(draw):
    """Random finetunes (from the base or any earlier job) and fusions (of 2-3 earlier jobs) over 4 tasks."""
    tasks = ["a", "b", "c", "d"]
    jobs = {}
    order = []
    for i in range(draw(st.integers(1, 9))):
        if order and draw(st.booleans()) and len(order) >= 2:
            srcs = draw(st.lists(st.sampled_from(order), min_size=2, max_size=3, unique=True))
            job = make_job("fuse", f"fuse#{i}", {"sources": [{"job": k} for k in srcs], "i": i}, tuple(srcs))
        else:
            start = draw(st.sampled_from([None, *order]))
            task = draw(st.sampled_from(tasks))
            model = {"base": "m"} if start is None else {"job": start}
            job = make_job("finetune", f"ft#{i} {task}", {"model": model, "task": {"name": task}, "i": i},
                           () if start is None else (start,))
        jobs[job.key] = job
        order.append(job.key)
    base = draw(st.sampled_from(order))
    target = draw(st.sampled_from(tasks))
    tj = make_job("finetune", "target", {"model": {"job": base}, "task": {"name": target}}, (base,))
    jobs[tj.key] = tj
    return jobs, tj, target, base


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_a_random_graph_is_refused_exactly_when_the_base_was_trained_on_the_target(case):
    jobs, tj, target, base = case
    leaks = target in trained_on(jobs, base)
    try:
        check_provenance(jobs, [TargetRun(target, tj.key, "b")])
    except LeakageError as e:
        assert leaks
        path = str(e).rsplit(": ", 1)[1].split(" <- ")
        assert path[0] == jobs[base].label and path[-1].endswith(f" {target}")  # from the base to the leak
        by_label = {j.label: j for j in jobs.values()}
        for up, down in zip(path, path[1:]):  # each step is an edge of the graph
            assert by_label[down].key in by_label[up].deps
    else:
        assert not leaks
