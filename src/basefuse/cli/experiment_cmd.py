"""`basefuse experiment`: run (or resume) a pretrained vs fused vs intertrained comparison from a YAML config."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from basefuse.cli import output

from basefuse.cli.executor_options import Device, ExecutorName, GpusPerJob, RayAddress, Threads, Workers
from basefuse.errors import BasefuseError

if TYPE_CHECKING:
    from basefuse.experiments.failures import Failures


def say(*args, **kwargs) -> None:
    """Print for a person: nothing under --quiet or --json (errors go to stderr with typer.echo directly)."""
    if output.human():
        typer.echo(*args, **kwargs)


def run_and_print(config_path: Path, out: Path, *, force: bool, executor: str, workers: int,
                  device: Optional[str], dry_run: bool, ray_address: Optional[str] = None,
                  gpus_per_job: float = 0.0, threads: Optional[int] = None, progress: bool = True) -> None:
    """Shared by `experiment` and `demo`: run, then print Table 1 and where the report is."""
    from basefuse.executors import make_executor
    from basefuse.experiments.config import load_experiment_config
    from basefuse.experiments.runner import make_plan, run_experiment

    cfg = load_experiment_config(config_path)
    if dry_run:
        plan = make_plan(cfg)
        written = _print_leakage(plan.leakage, out)
        kinds = Counter(j.kind for j in plan.jobs.values())
        say(f"jobs: {len(plan.jobs)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")
        target = Counter(plan.jobs[k].kind for k in plan.target_keys())
        say(f"target finetunes: {target.get('finetune', 0)} jobs"
                   + (f"; target probes: {target['probe']} jobs" if target.get("probe") else ""))
        say(f"target runs (report rows): {len(plan.runs)}")
        if plan.selection_pending:
            say(_selection_line(cfg))
        for line in plan_lines(cfg, plan.runs):
            say(line)
        from basefuse.experiments.leakage import largest_per_target

        output.result({"jobs": len(plan.jobs), "kinds": dict(sorted(kinds.items())), "target_runs": len(plan.runs),
                       "selection_pending": bool(plan.selection_pending), "leakage_table": written,
                       "largest_overlap_per_target": largest_per_target(plan.leakage),
                       "confirmatory_plan": plan_lines(cfg, plan.runs)})
        return
    with make_executor(executor, workers, threads=threads, address=ray_address, gpus_per_job=gpus_per_job) as ex:
        summary = run_experiment(cfg, out, executor=ex, device=device, force=force,
                                 progress=output.progress(progress))
    failures = summary.failures
    tail = f", {len(failures.failed)} failed, {len(failures.skipped)} skipped" if failures else ""
    say(f"\n{summary.jobs_executed} jobs run, {summary.jobs_reused} reused{tail}, "
               f"{summary.wall_s:.0f} s in all; results: {out / 'results.jsonl'}")
    report_error = None
    try:
        report_html = build_run_report(out, summary.records, cfg.conditions)
    except BasefuseError as e:
        if not failures:
            raise
        report_html, report_error = None, str(e)  # the failed jobs come first: they are named, then this
    if report_html is not None:
        from basefuse.reports.build import summary_text

        say(summary_text(out))
        say(f"HTML report: {report_html}")
    output.result({"jobs_run": summary.jobs_executed, "jobs_reused": summary.jobs_reused,
                   "failed": sorted(failures.failed) if failures else [],
                   "skipped": sorted(failures.skipped) if failures else [], "wall_s": summary.wall_s,
                   "results": str(out / "results.jsonl"),
                   "report_html": str(report_html) if report_html is not None else None})
    if failures:
        _print_failures(failures, out)
        if report_error:
            typer.echo(f"basefuse: error: no report: {report_error}", err=True)
        raise typer.Exit(1)


def _selection_line(cfg) -> str:
    """What the dry run cannot plan yet: the selection runs first, and its two conditions follow from its choice."""
    from basefuse.experiments.protocol import selection_pools

    sel = cfg.selection
    pools = selection_pools(cfg)
    candidates = sorted({c for p in pools.values() for c in p})
    per_target = len(cfg.seeds) * len(cfg.weight_decays) * (2 if cfg.evaluation == "both" else 1)
    return (f"selection ({sel.strategy}) runs first: {len(candidates)} candidates probed on {', '.join(sel.probe)} "
            f"with {len(sel.seeds)} seed(s), then up to {max(len(p) for p in pools.values()) - 1} trial fusions for "
            f"each of {len(set(pools.values()))} candidate pool(s); its conditions best single and fused[greedy] add "
            f"{2 * per_target * len(pools)} target runs, not counted above")


def plan_lines(cfg, runs) -> list[str]:
    """The confirmatory plan before anything runs: per claim the planned n, whether it can reach p_holm < alpha at
    all, and the smallest effect detectable with 80% power at the config's assumed target SD."""
    from basefuse.reports import confirmatory

    plan = confirmatory.plan_from_config(cfg)
    lines = [f"confirmatory plan (Holm over C1-C5, alpha {plan.alpha:g}, assumed SD over targets "
             f"{plan.assumed_target_sd:g} points):"]
    for c in confirmatory.plan_claims(runs, plan, cfg.weight_decays[0]):
        head = f"  {c.id} {c.title} ({c.a} vs {c.b}): "
        if c.verdict == confirmatory.NOT_MEASURED:
            lines.append(head + (c.reason or c.verdict))
            continue
        if c.detectable_planned is None:
            power = "no power formula for this test"
        elif c.scale == "ratio":
            power = f"detectable at 80% power: a ratio of {c.detectable_planned:.2f}"
        else:
            power = f"detectable at 80% power: {c.detectable_planned:.2f} points"
        lines.append(head + f"n = {c.n} targets ({c.seeds[0]}-{c.seeds[1]} seeds); {c.reason}; {power}")
    return lines


def build_run_report(out: Path, records: list, conditions: list[str]) -> Path | None:
    """The report of a finished run, built here rather than by the runner (the experiment layer never imports the
    report layer); None when there is nothing to measure gains against (no records, or no pretrained condition)."""
    if not records or "pretrained" not in conditions:
        return None
    from basefuse.reports.build import build_report
    from basefuse.reports.evaluations import evaluations_in, report_folder

    present = evaluations_in(records)
    for other in present[1:]:  # each further evaluation gets its own report beside the primary one
        build_report(out, out / report_folder(other, present[0]), evaluation=other)
    return Path(build_report(out, evaluation=present[0] if present else None).html)


def _print_leakage(table: dict, out: Path) -> str | None:
    """The dry run's leakage lines: the base model's provenance, the largest overlap per target, the table's file."""
    from basefuse.experiments.leakage import largest_per_target, write_dry_run_leakage

    base = table.get("base_model") or {}
    tasks = sorted({t["task"] for t in base.get("trained_on", [])})
    say(f"base model {base.get('spec', '?')}: {base.get('provenance', '?')}"
               + (f" (finetuned on {', '.join(tasks)})" if tasks else ""))
    say(f"leakage, largest per target (exact copies / near-duplicates; limits "
               f"{table['max_test_overlap']:g} / {table.get('max_near_duplicate_overlap', 1):g}):")
    for r in largest_per_target(table):
        say(f"  {r['target']}: {r['overlap']} / {r.get('near_overlap', 0)} of {r['n_test']} test texts "
                   f"({r['fraction']:.1%} / {r.get('near_fraction', 0):.1%}), base {r['base']}")
    written = write_dry_run_leakage(out, table)
    say(f"leakage table: {written}" if written else
               f"leakage table not written: {out} holds a run or other files (a dry run writes only into a new "
               "or empty folder)")
    return str(written) if written else None


def _print_failures(failures: "Failures", out: Path) -> None:
    """Name every failed job and its error; the skipped ones are counted (they are listed in the file)."""
    from basefuse.experiments.failures import FAILURES

    typer.echo(f"basefuse: error: {len(failures.failed)} job(s) failed and {len(failures.skipped)} were skipped "
               f"because they need one; rerun to retry them (details: {out / FAILURES})", err=True)
    for f in failures.failed.values():
        typer.echo(f"  failed: {f['label']}: {f['error']} (job {f['key']})", err=True)


def register(app: typer.Typer) -> None:
    @app.command("experiment")
    def experiment(
        config: Path = typer.Argument(..., help="YAML experiment config (see configs/demo.yaml)."),
        out: Path = typer.Option(Path("runs/experiment"), "--out", "-o", help="Run directory (resumable)."),
        force: bool = typer.Option(False, "--force", help="Reuse a run directory made by a different config."),
        executor: ExecutorName = "local",
        workers: Workers = 1,
        threads: Threads = None,
        device: Device = None,
        ray_address: RayAddress = None,
        gpus_per_job: GpusPerJob = 0.0,
        dry_run: bool = typer.Option(False, "--dry-run", help="Only plan: check leakage, print the largest overlap "
                                     "per target, how many jobs the plan has and, per confirmatory claim C1-C5, its "
                                     "n, whether it can reach a verdict and the smallest effect it can detect; write "
                                     "OUT/leakage.json if OUT is new or empty (never into an existing run: nothing "
                                     "there is touched)."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress display (on a terminal a bar; "
                                         "otherwise, e.g. into a log file, one line per finished job on stderr)."),
    ) -> None:
        """Finetune pretrained, fused and intertrained bases on held-out targets over seeds; write the report.

        A run killed at any point and started again redoes no finished job.
        """
        run_and_print(config, out, force=force, executor=executor, workers=workers, device=device,
                      dry_run=dry_run, ray_address=ray_address, gpus_per_job=gpus_per_job, threads=threads,
                      progress=not no_progress)
