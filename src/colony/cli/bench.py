"""`colony bench`: the verified coding benchmark (HumanEval and Colony's own tiered problems).

``colony bench coding`` gives each problem to the node's agent, runs the hidden tests in the
sandbox and stores the run; ``--canonical`` runs the known-good solutions instead (a check of the
harness itself, no model needed). Exit 1 when a canonical run does not pass everything.

``colony bench coding --colony`` splits the run across the colony's live nodes instead
(`colony.federation.partition`): the queen gives each node a share, each solves it with its own
model, and the queen merges the verdicts into one run (shard ``colony``). It needs this node's
``colony up`` running; ``colony bench colony-runs`` lists such runs and shows one in detail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from colony.bench.harness import Verdict
from colony.bench.problems import parse_shard
from colony.bench.runner import RunReport, run_benchmark, select_problems
from colony.bench.runs import list_runs, pending_change
from colony.cli._common import ExitCode, err, fail, load, out, print_json, progress_bar, reporting
from colony.federation import partition
from colony.federation.partition_wire import Mode, Suite
from colony.llm.detect import build_model
from colony.node import Node
from colony.store import Database, open_database

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
    colony: Annotated[bool, typer.Option(
        "--colony", help="Split the run across the colony's live nodes; the queen merges the scores.")] = False,
    problem_timeout: Annotated[float, typer.Option(
        min=1.0, help="With --colony: a node silent this many seconds after it was given problems loses them.")]
    = partition.DEFAULT_PROBLEM_TIMEOUT_S,
    wait: Annotated[bool, typer.Option(help="With --colony: wait for the merged run (else print its id).")] = True,
    wait_timeout: Annotated[float, typer.Option(min=1.0, help="With --colony: give up waiting after this many seconds.")]
    = 3600.0,
) -> None:
    """Run the coding benchmark and store the run: pass@1 per tier, a weighted score with its 95% CI.

    Examples:

        colony bench coding --canonical --suite humaneval

        colony bench coding --suite colony --shard 1/2

        colony bench coding --suite all --json

        colony bench coding --colony --suite colony --limit 30
    """
    try:
        shard_spec = parse_shard(shard)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    settings = load()
    if colony:
        if shard_spec != (1, 1):
            fail("--colony splits the problems itself: leave out --shard.", ExitCode.USAGE)
        _colony_run(suite.value, "canonical" if canonical else "agent", limit, problem_timeout,
                    wait_timeout if wait else None, as_json)
        return

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


# -- runs across the colony ------------------------------------------------------------------------
def _colony_run(suite: Suite, mode: Mode, limit: int | None, problem_timeout: float, wait_s: float | None,
                as_json: bool) -> None:
    settings = load()
    with reporting():
        node = Node(settings)
        try:
            if not partition.serving(node.db):
                fail("This node is not running: a colony run is solved by the serving nodes.", ExitCode.FAILED,
                     "start it with: colony up")
            row = partition.request_run(node, suite=suite, mode=mode, limit=limit, problem_timeout_s=problem_timeout)
            asked = "this node" if row["queen"] == row["requester"] else f"the queen {row['queen'][:16]}…"
            if wait_s is None:
                if as_json:
                    print_json(row)
                else:
                    out.print(f"colony run {row['id']} asked of {asked}; see: colony bench colony-runs {row['id']}",
                              highlight=False)
                return
            err.print(f"colony run {row['id']} asked of {asked}; waiting for the merged run…", highlight=False)
            merged = _wait_merged(node.db, row["id"], wait_s)
        finally:
            node.db.close()
    if merged is None:
        fail(f"colony run {row['id']} was not merged within {wait_s:.0f} s.", ExitCode.FAILED,
             f"it may still finish: colony bench colony-runs {row['id']}")
    _show_colony_run(merged, as_json)
    if mode == "canonical" and merged["summary"]["passed"] != merged["summary"]["problems"]:
        raise SystemExit(int(ExitCode.FAILED))


def _wait_merged(db: Database, run: str, wait_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        detail = partition.run_detail(db, run)
        if detail is not None and detail["state"] == "merged":
            return detail
        time.sleep(0.25)
    return None


def _show_colony_run(detail: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(detail)
        return
    summary = detail["summary"] or {}
    out.print(f"colony run {detail['id']} · {detail['suite']} · {detail['mode']} · {detail['state']}", highlight=False)
    if summary:
        out.print(f"{summary['passed']}/{summary['problems']} passed · score (IQ) {summary['score'] * 100:.1f} · "
                  f"{summary['reassigned']} problems moved · {summary['refused']} reports refused · "
                  f"{summary['wall_s']:.1f} s · bench run {detail['bench_run']}", highlight=False)
        table = Table(title="nodes")
        for col in ("node", "name", "given", "verdicts", "passed"):
            table.add_column(col)
        for key, n in sorted(summary["nodes"].items()):
            table.add_row(key[:16] + "…", escape(n["name"]), str(n["assigned"]), str(n["solved"]), str(n["passed"]))
        out.print(table)
    for r in detail.get("results", []):
        colour = "green" if r["outcome"] == "pass" else "red"
        out.print(f"[{colour}]{r['outcome']}[/] {escape(r['problem_id'])} · {r['node'][:12]}…", highlight=False)


@bench_app.command("colony-runs")
def colony_runs(
    run: Annotated[str | None, typer.Argument(help="A run's id: show it in detail (who solved what).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the runs split across the colony (newest first), or show one: per-node counts and who solved what."""
    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            detail = partition.run_detail(db, run) if run else None
            rows = [] if run else partition.status(db, limit)
        finally:
            db.close()
    if run:
        if detail is None:
            fail(f"No colony run {run} on this node.", ExitCode.USAGE, "list them with: colony bench colony-runs")
        _show_colony_run(detail, as_json)
        return
    if as_json:
        print_json({"runs": rows})
        return
    table = Table(title="colony runs")
    for col in ("run", "state", "suite", "queen", "reported", "passed", "moved", "refused"):
        table.add_column(col)
    for r in rows:
        summary = r["summary"] or {}
        table.add_row(r["id"][:12], r["state"], r["suite"], r["queen"][:12] + "…",
                      f"{summary.get('problems', r['reported'])}/{r['problems'] if r['problems'] is not None else '?'}",
                      str(summary.get("passed", r["passed"])), str(summary.get("reassigned", "")),
                      str(summary.get("refused", "")))
    out.print(table)

