"""The experiment configs and the new finetuning hyperparameters: declared once, keyed, stated by each config."""
from __future__ import annotations

import pytest

from basefuse.experiments.config import builtin_config_path, load_experiment_config, parse_experiment_config
from basefuse.experiments.protocol import TaskFacts, build_plan
from basefuse.finetuning.config import FinetuneConfig

FAMILIES = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"]}


def _facts(names) -> dict[str, TaskFacts]:
    return {n: TaskFacts(train_size=100 + i, fingerprint_source=f"{n}-s", fingerprint_target=f"{n}-t")
            for i, n in enumerate(names)}


def _target_hparams(finetune: dict) -> list[dict]:
    cfg = parse_experiment_config({"families": FAMILIES, "seeds": [0], "finetune": finetune})
    plan = build_plan(cfg, _facts(cfg.task_refs()), "base", "fp")
    return [job.params["hparams"] for job in plan.target_jobs().values()]


def test_experiment_finetune_keys_take_every_new_hyperparameter_and_job_keys_change_with_them():
    new = {"min_steps": 7, "grad_accum": 2, "max_grad_norm": None, "bf16": False, "evals_per_run": 4,
           "max_test": 50}
    for hp in _target_hparams(new):
        assert {k: hp[k] for k in new} == new
    base_keys = {j for j in _plan_keys({})}
    for field, value in new.items():
        assert _plan_keys({field: value}).isdisjoint(base_keys), field


def _plan_keys(finetune: dict) -> set[str]:
    cfg = parse_experiment_config({"families": FAMILIES, "seeds": [0], "finetune": finetune})
    return set(build_plan(cfg, _facts(cfg.task_refs()), "base", "fp").target_jobs())


def test_demo_pins_the_training_length_it_was_timed_with():
    """The demo's results and its <= 10 min runtime were measured before issue 10: epochs alone set the length,
    no clipping, lr 2e-4, validation every 10 (targets) / 25 (sources) steps. Its config must keep saying so."""
    c = load_experiment_config(builtin_config_path("demo"))
    for hp, eval_every, epochs in ((c.finetune, 10, 3), (c.source_hparams, 25, 2)):
        assert hp.min_steps == 0 and hp.max_grad_norm is None and hp.grad_accum == 1
        assert hp.learning_rate == 2e-4 and hp.eval_every == eval_every and hp.max_epochs == epochs


def test_paper_cpu_config_parses_and_plans_every_task_as_target():
    c = load_experiment_config(builtin_config_path("paper-cpu"))
    names = list(c.task_refs())
    plan = build_plan(c, _facts(names), "base", "fp")
    # 9 tasks; each a target with 3 conditions (pretrained, fused over the other 8, intertrained) x 3 seeds
    assert len(names) == 9 and len(plan.source_jobs()) == 9
    assert len(plan.fuse_jobs()) == 9 and len(plan.target_jobs()) == 9 * 3 * 3
    assert {r.target for r in plan.runs} == set(names) and len(c.seeds) >= 3
    for run in plan.runs:
        assert run.target not in run.sources
        if run.condition == "fused":
            assert len(run.sources) == 8
    # the config states every hyperparameter, so a later change of a default cannot change its results
    declared = set(FinetuneConfig.model_fields) - {"max_train", "eval_every"}
    raw = __import__("yaml").safe_load(builtin_config_path("paper-cpu").read_text())
    for section in ("finetune", "source_finetune"):
        assert declared <= set(raw[section]), declared - set(raw[section])


@pytest.mark.slow
def test_paper_cpu_dry_run_from_the_cli(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "basefuse", "experiment", str(builtin_config_path("paper-cpu")),
                           "--out", str(tmp_path / "run"), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "target finetunes: 81 jobs" in proc.stdout
