"""`colony eval`: run the behavioural suite against the configured model, and A/B module sets.

Runs, results and A/B reports are stored in the node database; ``show`` prints any of them
again. The model is the node's own (COLONY_MODEL_BASE_URL, providers, autodetection), so the
same suite measures any model Colony can talk to. Exit codes: 1 when a run regressed against
the baseline or nothing matched the filters.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from colony.cli._common import ExitCode, fail, load, out, print_json, progress_bar, reporting
from colony.config import Settings
from colony.evals import _store
from colony.evals.ab import ABReport, run_ab
from colony.evals.models import EvalCase
from colony.evals.properties import label
from colony.evals.runner import RunReport, run_suite, suite_cases
from colony.llm.detect import build_model
from colony.store import Database, open_database

__all__ = ["eval_app"]

eval_app = typer.Typer(
    name="eval",
    help=(
        "Behavioural evals: a stored suite of cases (clarification, tool selection, safety, read-before-write, "
        "hallucination, efficiency, grounding) run against the configured model.\n\n"
        "`run` stores each run and compares it with the baseline; `ab` measures a module set on vs off with "
        "Wilson 95% intervals and an A/A control."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)

CategoryOpt = Annotated[str | None, typer.Option("--category", "-c", help="Only cases of this category.")]
CaseOpt = Annotated[list[str] | None, typer.Option("--case", help="Only this case id (repeatable).")]


def _cases(db: Database, category: str | None, case: list[str] | None) -> list[EvalCase]:
    cases = suite_cases(db, category=category, ids=case or ())
    if not cases:
        fail("no eval cases match", ExitCode.FAILED, "list them with: colony eval list")
    return cases


def _load_cases(settings: Settings, category: str | None, case: list[str] | None) -> list[EvalCase]:
    """The cases a run will take, read once up front (a clear error before any model is built if none)."""
    db = open_database(settings.db_path)
    try:
        return _cases(db, category, case)
    finally:
        db.close()


@eval_app.command("list")
def list_(category: CategoryOpt = None,
          runs: Annotated[bool, typer.Option("--runs", help="List stored runs and A/B reports instead.")] = False,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the eval cases (or, with --runs, the stored runs and A/B reports).

    Examples:

        colony eval list

        colony eval list --category safety --json

        colony eval list --runs
    """
    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            if runs:
                listed: dict[str, Any] = {"runs": _store.list_runs(db), "ab": _store.list_ab(db)}
                if as_json:
                    print_json(listed)
                    return
                t = Table(title="eval runs")
                for col in ("run", "label", "model", "passed", "failed", "baseline", "created"):
                    t.add_column(col)
                for r in listed["runs"]:
                    t.add_row(r["id"], escape(r["label"]), escape(r["model"]), str(r["properties_passed"]),
                              str(r["properties_failed"]), "yes" if r["is_baseline"] else "", r["created_at"])
                out.print(t)
                a = Table(title="A/B reports")
                for col in ("id", "model", "modules", "trials", "created"):
                    a.add_column(col)
                for r in listed["ab"]:
                    a.add_row(r["id"], escape(r["model"]), escape(r["modules"]), str(r["trials"]), r["created_at"])
                out.print(a)
                return
            cases = suite_cases(db, category=category)
        finally:
            db.close()
    if as_json:
        print_json([c.model_dump(mode="json") for c in cases])
        return
    t = Table(title=f"{len(cases)} eval cases")
    for col in ("case", "category", "input", "properties"):
        t.add_column(col)
    for c in cases:
        t.add_row(c.id, c.category, escape(" / ".join(c.turns)[:70]), escape(", ".join(label(p) for p in c.properties)))
    out.print(t)


def _print_run(report: RunReport) -> None:
    out.print(f"run [bold]{report.run_id}[/] · model {escape(report.model)} · {report.cases} cases · "
              f"{report.passed}/{report.passed + report.failed} properties passed ({report.pass_rate:.0%})"
              + (" · [cyan]baseline[/]" if report.baseline else ""))
    t = Table()
    for col in ("category", "passed", "total"):
        t.add_column(col)
    for cat, (p, n) in report.by_category.items():
        t.add_row(cat, str(p), str(n))
    out.print(t)
    if report.regression is not None:
        r = report.regression
        colour = "red" if r.regressed else "green"
        out.print(f"[{colour}]vs baseline {r.baseline_id}: {len(r.new_failures)} new failures, {len(r.fixed)} fixed[/]")
        for key in r.new_failures[:30]:
            out.print(f"  [red]-[/] {escape(key)}")


@eval_app.command()
def run(category: CategoryOpt = None, case: CaseOpt = None,
        trials: Annotated[int, typer.Option(min=1, max=100, help="Runs per case.")] = 1,
        run_label: Annotated[str, typer.Option("--label", help="A note stored with the run.")] = "",
        baseline: Annotated[bool | None, typer.Option("--baseline/--no-baseline",
                                                      help="Make this run the baseline (default: only if none).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Run the suite against the configured model, store the run and compare with the baseline.

    Examples:

        colony eval run

        colony eval run --category safety --trials 3

        colony eval run --baseline --label "after prompt change"
    """
    settings = load()

    async def go(step: Callable[[str], None]) -> RunReport:
        db = open_database(settings.db_path)
        model = await build_model(settings)
        try:
            return await run_suite(db, model, settings, cases, run_label=run_label, trials=trials,
                                   baseline=baseline, progress=step)
        finally:
            await model.aclose()
            db.close()

    cases = _load_cases(settings, category, case)
    with reporting(), progress_bar("eval run", len(cases) * trials, enabled=not as_json) as step:
        report = asyncio.run(go(step))
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        _print_run(report)
    if report.regression is not None and report.regression.regressed:
        raise SystemExit(int(ExitCode.FAILED))


def _print_ab(report: ABReport) -> None:
    out.print(f"A/B [bold]{report.id}[/] · model {escape(report.model)} · modules {', '.join(report.modules)} · "
              f"{report.cases} cases × {report.trials} trials")
    t = Table()
    for col in ("property", "n", "A (off)", "B (on)", "B − A", "A′ − A (noise)", "distinct"):
        t.add_column(col)
    for r in report.rows:
        t.add_row(r.property, str(r.n), f"{r.a_rate:.2f} [{r.a_ci[0]:.2f}, {r.a_ci[1]:.2f}]",
                  f"{r.b_rate:.2f} [{r.b_ci[0]:.2f}, {r.b_ci[1]:.2f}]", f"{r.diff:+.2f}", f"{r.aa_diff:+.2f}",
                  "yes" if r.distinguishable else "")
    out.print(t)


@eval_app.command()
def ab(modules: Annotated[str, typer.Option(help="'all' (the whole substrate) or a comma list, e.g. lessons,neuromod.")] = "all",
       trials: Annotated[int, typer.Option("--trials", "-n", min=1, max=1000, help="Trials per case and arm.")] = 5,
       category: CategoryOpt = None, case: CaseOpt = None,
       as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Compare a module set on (B) vs off (A), with an A/A control; store and print the report.

    Examples:

        colony eval ab --trials 10

        colony eval ab --modules lessons --category hallucination -n 20
    """
    from colony.cognition import MODULES

    chosen = [m.strip() for m in modules.split(",") if m.strip()]
    unknown = [m for m in chosen if m != "all" and m not in MODULES]
    if not chosen or unknown or ("all" in chosen and len(chosen) > 1):
        fail(f"unknown module set {modules!r}", ExitCode.USAGE, f"use 'all' or some of: {', '.join(MODULES)}")
    settings = load()

    async def go(step: Callable[[str], None]) -> ABReport:
        db = open_database(settings.db_path)
        model = await build_model(settings)
        try:
            return await run_ab(db, model, settings, cases, modules=chosen, trials=trials,
                                progress=step)
        finally:
            await model.aclose()
            db.close()

    cases = _load_cases(settings, category, case)
    with reporting(), progress_bar("eval ab", len(cases) * trials, enabled=not as_json) as step:
        report = asyncio.run(go(step))
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        _print_ab(report)


@eval_app.command()
def show(item: Annotated[str, typer.Argument(help="A run id (run_…) or an A/B report id (ab_…).")],
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show a stored run (per-case results) or A/B report.

    Examples:

        colony eval show run_0123456789abcdef

        colony eval show ab_0123456789abcdef --json
    """
    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            ab_row = _store.get_ab(db, item)
            run_row = None if ab_row else _store.get_run(db, item)
            results = _store.run_results(db, item) if run_row else []
        finally:
            db.close()
    if ab_row is not None:
        report = ABReport.model_validate_json(ab_row["report"])
        if as_json:
            print_json(report.model_dump(mode="json"))
        else:
            _print_ab(report)
        return
    if run_row is None:
        fail(f"no eval run or A/B report {item!r}", ExitCode.FAILED, "list them with: colony eval list --runs")
    if as_json:
        print_json({"run": {**run_row, "condition": json.loads(run_row["condition"])}, "results": results})
        return
    out.print(f"run [bold]{run_row['id']}[/] · model {escape(run_row['model'])} · {run_row['properties_passed']} passed, "
              f"{run_row['properties_failed']} failed" + (" · [cyan]baseline[/]" if run_row["is_baseline"] else ""))
    t = Table()
    for col in ("case", "trial", "property", "result", "detail"):
        t.add_column(col)
    for r in results:
        t.add_row(r["case_id"], str(r["trial"]), r["property"], "[green]pass[/]" if r["passed"] else "[red]fail[/]",
                  escape(str(r["detail"])[:80]))
    out.print(t)
