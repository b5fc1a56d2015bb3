"""`colony bench`: the verified coding benchmark (HumanEval and Colony's own tiered problems).

``colony bench coding`` gives each problem to the node's agent, runs the hidden tests in the
sandbox and stores the run; ``--canonical`` runs the known-good solutions instead (a check of the
harness itself, no model needed). Exit 1 when a canonical run does not pass everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from colony.bench.harness import Verdict
from colony.bench.problems import parse_shard
from colony.bench.runner import RunReport, run_benchmark, select_problems
from colony.bench.runs import list_runs, pending_change
from colony.cli._common import ExitCode, err, fail, load, out, print_json, progress_bar, reporting
from colony.llm.detect import build_model
from colony.store import open_database

__all__ = ["bench_app"]

bench_app = typer.Typer(
    name="bench",
    help="Benchmarks with verified answers: the agent writes code, hidden tests in the sandbox decide.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


class SuiteOpt(StrEnum):
    colony = "colony"
    humaneval = "humaneval"
    all = "all"


@bench_app.command()
def coding(
    suite: Annotated[SuiteOpt, typer.Option(help="Problem set: Colony's 60 tiered problems, HumanEval's 164, or both.")]
    = SuiteOpt.colony,
    canonical: Annotated[bool, typer.Option("--canonical", help="Run the known-good solutions (checks the harness).")]
    = False,
    shard: Annotated[str, typer.Option(help="Run only slice i of n (e.g. 2/4), for splitting work.")] = "1/1",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N problems (a partial run).")] = None,
    include_deprioritized: Annotated[
        bool, typer.Option("--include-deprioritized", help="Also run problems failed 5 times in a row.")] = False,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Sandboxes at once (canonical mode).")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Run the coding benchmark and store the run: pass@1 per tier, a weighted score with its 95% CI.

    Examples:

        colony bench coding --canonical --suite humaneval

        colony bench coding --suite colony --shard 1/2

        colony bench coding --suite all --json
    """
    try:
        shard_spec = parse_shard(shard)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    settings = load()

    async def go(step: Callable[[str], None]) -> RunReport:
        def on_verdict(v: Verdict) -> None:
            step(f"{v.problem_id} {v.outcome}")

        db = open_database(settings.db_path)
        try:
            if canonical:
                return await run_benchmark(settings, db, suite=suite.value, mode="canonical", shard_spec=shard_spec,
                                           limit=limit, include_deprioritized=True, workers=workers,
                                           on_verdict=on_verdict, selection=selection)
            model = await build_model(settings)
            try:
                names = [f"{c.name}:{c.model}" for c in model.configs]
                return await run_benchmark(settings, db, suite=suite.value, mode="agent", model=model,
                                           model_name=",".join(names), shard_spec=shard_spec, limit=limit,
                                           include_deprioritized=include_deprioritized, on_verdict=on_verdict,
                                           selection=selection)
            finally:
                await model.aclose()
        finally:
            db.close()

    db = open_database(settings.db_path)
    try:
        selection = select_problems(db, suite.value, shard_spec, limit, canonical or include_deprioritized)
    finally:
        db.close()
    with reporting(), progress_bar(f"bench coding ({suite.value})", len(selection[0]), enabled=not as_json) as step:
        report = asyncio.run(go(step))
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        _print(report)
    if canonical and report.result.passed != report.result.problems:
        raise SystemExit(int(ExitCode.FAILED))


def _print(report: RunReport) -> None:
    r = report.result
    table = Table(title=f"{report.suite} · {report.mode} · shard {report.shard}")
    for col in ("tier", "passed", "total", "pass@1"):
        table.add_column(col)
    for t in r.tiers:
        table.add_row(str(t.tier), str(t.passed), str(t.total), f"{t.pass_at_1:.1%}")
    out.print(table)
    out.print(f"score (IQ) {r.iq} · 95% CI {r.ci_low * 100:.1f}-{r.ci_high * 100:.1f} · {r.passed}/{r.problems} "
              f"passed · {report.tokens} tokens · {report.wall_s:.1f} s · run {report.run_id}", highlight=False)
    for v in report.verdicts:
        if not v.passed:
            out.print(f"[red]{v.outcome}[/] {escape(v.problem_id)}: {escape(v.detail[:160])}", highlight=False)
    if report.skipped:
        err.print(f"skipped {len(report.skipped)} deprioritized problems (failed 5 times running)", highlight=False)
    if report.stagnating:
        err.print("[yellow]stagnation:[/] the last 3 complete runs scored the same", highlight=False)


@bench_app.command()
def runs(
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List stored benchmark runs (newest first) and the commit gate's state."""
    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            rows, pending = list_runs(db, limit), pending_change(db)
        finally:
            db.close()
    if as_json:
        print_json({"runs": rows, "pending_change": pending})
        return
    table = Table(title="benchmark runs")
    for col in ("when", "suite", "model", "shard", "passed", "score", "95% CI"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["created_at"], row["suite"], escape(row["model"]), row["shard"],
                      f"{row['passed']}/{row['problems']}", f"{row['score'] * 100:.1f}",
                      f"{row['ci_low'] * 100:.1f}-{row['ci_high'] * 100:.1f}")
    out.print(table)
    if pending:
        err.print(f"commit gate closed: {pending['kind']} {escape(pending['ref'])} awaits a complete run", highlight=False)
