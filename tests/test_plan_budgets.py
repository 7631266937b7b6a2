"""Issue 17, tests that miss bugs: `budgets.max_train_source` applies to the source finetunes (and to the task
fingerprint in their keys), `budgets.max_train_target` to the target finetunes; a swap anywhere on the way from
the config to the rows a job trains on is caught. The two budgets differ in every test, so a swap shows."""
from __future__ import annotations

from pathlib import Path

from basefuse.experiments.config import parse_experiment_config
from basefuse.experiments.jobs import execute_job
from basefuse.experiments.protocol import TaskFacts, build_plan
from basefuse.experiments.runner import gather_task_facts
from builders import keyword_rows, write_csv

SOURCE_BUDGET, TARGET_BUDGET = 30, 12
FAMILIES = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"]}


def budgets_config(**over) -> dict:
    return {"families": FAMILIES, "seeds": [0, 1], "targets": ["a1", "b2"],
            "budgets": {"max_train_source": SOURCE_BUDGET, "max_train_target": TARGET_BUDGET}} | over


def fake_facts() -> dict[str, TaskFacts]:
    return {n: TaskFacts(train_size=100 + i, fingerprint_source=f"{n}-source", fingerprint_target=f"{n}-target")
            for i, n in enumerate(n for names in FAMILIES.values() for n in names)}


def test_source_finetunes_get_the_source_budget_and_target_finetunes_the_target_budget():
    cold = {"iterations": 2, "contributors": 2}
    plan = build_plan(parse_experiment_config(budgets_config(cold_fusion=cold)), fake_facts(), "base", "fp")
    targets = set(plan.target_keys())
    finetunes = {k: j for k, j in plan.jobs.items() if j.kind == "finetune"}
    sources = {k: j for k, j in finetunes.items() if k not in targets}
    assert targets and sources and set(plan.sources.values()) <= set(sources)
    assert any(j.deps for j in sources.values())  # ColD contributors (finetuned from a fusion) are sources too
    for job in sources.values():
        name = job.params["task"]["name"]
        assert (job.params["max_train"], job.params["task"]["fingerprint"]) == (SOURCE_BUDGET, f"{name}-source")
    for key in targets:
        job = plan.jobs[key]
        name = job.params["task"]["name"]
        assert (job.params["max_train"], job.params["task"]["fingerprint"]) == (TARGET_BUDGET, f"{name}-target")


def csv_config(root: Path) -> dict:
    """The same families as CSV files of 100 rows each: test 10, validation 9, train 81 (above both budgets)."""
    seed = {n: i for i, n in enumerate(n for names in FAMILIES.values() for n in names)}  # distinct rows
    fams = {fam: [{"name": n, "spec": str(write_csv(root / f"{n}.csv", keyword_rows(100, seed=seed[n])))}
                  for n in names] for fam, names in FAMILIES.items()}
    return budgets_config(families=fams, base_model="unused")


def test_task_facts_fingerprint_each_role_with_its_own_budget(tmp_path):
    from basefuse.data.api import load_task

    cfg = parse_experiment_config(csv_config(tmp_path))
    facts = gather_task_facts(cfg)
    for name, fact in facts.items():
        spec = str(tmp_path / f"{name}.csv")
        assert fact.train_size == 81  # the whole train split, before any budget
        assert fact.fingerprint_source == load_task(spec, max_train=SOURCE_BUDGET).fingerprint
        assert fact.fingerprint_target == load_task(spec, max_train=TARGET_BUDGET).fingerprint
        assert fact.fingerprint_source != fact.fingerprint_target


def test_a_finetune_job_trains_on_as_many_rows_as_its_budget(tmp_path, monkeypatch):
    from basefuse.finetuning import api

    trained_on: dict[str, int] = {}

    def fake_finetune(model, task, **kw):
        trained_on[task.name] = len(task.train)
        return {"test": {"accuracy": 0.5, "macro_f1": 0.5}}

    monkeypatch.setattr(api, "finetune", fake_finetune)
    (tmp_path / "data").mkdir()
    cfg = parse_experiment_config(csv_config(tmp_path / "data"))
    plan = build_plan(cfg, gather_task_facts(cfg), "base", "fp")
    source = plan.source_jobs()["a2"]
    target = next(plan.jobs[r.job_key] for r in plan.runs if r.target == "a1")
    for job in (source, target):
        execute_job(job.to_dict(), str(tmp_path / "run"))
    assert trained_on == {"a2": SOURCE_BUDGET, "a1": TARGET_BUDGET}  # a task loaded from a.csv is named a
