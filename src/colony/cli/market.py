"""`colony market`: auctions of tasks among the node's agents — post, watch, award, verify, recheck.

A task is put up for a sealed-bid reverse auction (``post``); the node's agents commit and reveal
bids, the lowest wins and is paid the second-lowest bid from the poster's escrow once its result
passes verification (``run`` does one pass of the worker that does all this; ``colony up`` with
COLONY_MARKET_ENABLED=true runs it continuously). Bids are shown only after the reveal deadline.
``recheck`` recomputes the winner and price from the signed events alone.

Amounts are credits (``5``, ``1.5``) or micro-credits (``1500000u``); ``--json`` prints micro-credits.
Auction ids may be shortened to their first characters (at least 6).

Exit codes: 0 ok · 1 refused (a poster without funds, a task or auction in the wrong state, a
recheck that does not reproduce the award) · 2 bad arguments (unknown auction, task or agent, a
value out of bounds) · 3 keys locked or no model · 4 database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from colony.cli._common import ExitCode, fail, load, out, print_json, reporting
from colony.cli.identity import announce
from colony.ledger import format_amount
from colony.ledger.amounts import parse_amount
from colony.market.events import MarketError, Rule, Verification
from colony.market.queries import auction_detail, auctions, reputation_table
from colony.market.service import AuctionError, Market
from colony.market.views import AuctionDetail, AuctionRequest, AuctionState, AuctionView, PassReport
from colony.market.worker import market_pass
from colony.node import Node

__all__ = ["market_app"]

market_app = typer.Typer(
    name="market",
    help=("Auctions of tasks among this node's agents: post a task with a budget, agents bid (sealed, then "
          "revealed), the lowest wins and is paid the second-lowest bid once its result is verified.\n\n"
          "Exit codes: 0 ok · 1 refused · 2 bad arguments · 3 keys locked or no model · 4 database."),
    no_args_is_help=True,
    rich_markup_mode="rich",
)

IdArg = Annotated[str, typer.Argument(metavar="AUCTION", help="The auction's id, or its first characters (≥ 6).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print as JSON (amounts in micro-credits, times in Unix s).")]
_USAGE_REASONS = ("not_found", "ambiguous", "invalid")


@contextmanager
def _market() -> Iterator[Market]:
    """A node and its market; refusals and errors as exit codes."""
    settings = load()
    with reporting():
        node = Node(settings)
        try:
            announce(node.keyring.ensure(announce=False))
            try:
                yield Market(node)
            except AuctionError as exc:
                fail(str(exc), ExitCode.USAGE if exc.reason in _USAGE_REASONS else ExitCode.FAILED)
            except MarketError as exc:
                fail(str(exc), ExitCode.FAILED)
        finally:
            node.db.close()


def _amount(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_amount(text)
    except ValueError as exc:
        fail(f"{option}: {exc}", ExitCode.USAGE)


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _countdown(view: AuctionView) -> str:
    if view.commit_in_s is not None:
        return f"commits close in {view.commit_in_s}s"
    if view.reveal_in_s is not None:
        return f"reveals close in {view.reveal_in_s}s"
    return "—"


def _credits(value: int | None) -> str:
    return "—" if value is None else format_amount(value)


@market_app.command("auctions")
def list_auctions(
    state: Annotated[list[str] | None, typer.Option("--state", help="Only these states (repeat): open, awarded, "
                                                                    "paid, refunded, cancelled, void.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List auctions with their phase and a countdown to the next deadline.

    Examples:

        colony market auctions

        colony market auctions --state open --json
    """
    allowed = get_args(AuctionState)
    bad = [s for s in state or [] if s not in allowed]
    if bad:
        fail(f"unknown state {bad[0]!r}; use one of: {', '.join(allowed)}", ExitCode.USAGE)
    with _market() as market:
        found = auctions(market, states=state or None, limit=limit)
    if as_json:
        print_json({"auctions": [a.model_dump(mode="json") for a in found]})
        return
    if not found:
        out.print("no auctions yet: post one with [bold]colony market post GOAL --reserve 5 --verify approval[/]")
        return
    table = Table(title="auctions")
    for column in ("id", "phase", "goal", "reserve", "commits", "deadline", "winner", "price"):
        table.add_column(column, overflow="fold", justify="right" if column in ("reserve", "commits", "price") else "left")
    for a in found:
        table.add_row(a.id[:12], a.phase, escape(a.goal[:60]), format_amount(a.reserve), str(a.commits),
                      _countdown(a), escape(a.winner_name or "—"), _credits(a.price))
    out.print(table)


def _print_detail(d: AuctionDetail) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="dim")
    table.add_column(overflow="fold")
    rows = [("auction", d.id), ("task", f"{d.task_id} ({d.task_state})"), ("goal", d.goal),
            ("skills", ", ".join(d.skills) or "—"), ("phase", d.phase + (f" — {d.reason}" if d.reason else "")),
            ("rule", d.rule), ("poster", f"{d.poster_name} ({d.poster[:12]}…)"),
            ("reserve", f"{format_amount(d.reserve)} credits"), ("bond", f"{format_amount(d.bond)} credits"),
            ("commit deadline", f"{_when(d.commit_deadline)}" + (f" (in {d.commit_in_s}s)" if d.commit_in_s else "")),
            ("reveal deadline", f"{_when(d.reveal_deadline)}" + (f" (in {d.reveal_in_s}s)" if d.reveal_in_s else "")),
            ("verification", d.verification + (f" {d.verify_spec}" if d.verification != "tests" else "")),
            ("commitments", str(d.commits))]
    if d.winner_name:
        rows += [("winner", f"{d.winner_name} at {format_amount(d.price or 0)} credits"),
                 ("escrow", f"{d.escrow_hold} ({d.escrow_state})")]
    if d.verification_result:
        v = d.verification_result
        rows.append(("verdict", f"{'passed' if v.passed else 'failed'} ({v.decided_by}): {v.detail}"
                     + (f" · slashed {format_amount(v.slashed)}" if v.slashed else "")))
    for key, value in rows:
        table.add_row(key, escape(value))
    out.print(table)
    if d.bids is None:
        out.print("[dim]bids are sealed until the reveal deadline[/]")
        return
    bids = Table(title="bids")
    for column in ("bidder", "amount", "outcome", "committed", "revealed"):
        bids.add_column(column, justify="right" if column == "amount" else "left")
    for b in d.bids:
        bids.add_row(escape(b.name or b.bidder[:12]), _credits(b.amount), b.outcome + (f" ({b.refusal})" if b.refusal
                                                                                         else ""),
                     _when(b.committed_at), _when(b.revealed_at) if b.revealed_at else "—")
    out.print(bids)


@market_app.command()
def show(auction: IdArg,
         events: Annotated[bool, typer.Option("--events", help="Also print the signed events.")] = False,
         as_json: JsonOpt = False) -> None:
    """Show one auction: terms, deadlines, bids (after the reveal deadline), award, verdict.

    Examples:

        colony market show 3fa2c1

        colony market show 3fa2c1 --events --json
    """
    with _market() as market:
        detail = auction_detail(market, market.resolve(auction))
    if as_json:
        data = detail.model_dump(mode="json")
        if not events:
            data.pop("events")
        print_json(data)
        return
    _print_detail(detail)
    if events:
        for e in detail.events:
            out.print(f"[dim]{_when(e.received_at)}[/] {e.kind} {e.event['id'][:12]}… by {e.event['pubkey'][:12]}…",
                      highlight=False)


@market_app.command()
def post(
    goal: Annotated[str | None, typer.Argument(help="What to do (a new task). Omit with --task.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Auction this posted task instead of a new one.")] = None,
    reserve: Annotated[str | None, typer.Option("--reserve", help="The most the poster pays: credits or NNNu "
                                                                  "(default: the task's credit budget).")] = None,
    skill: Annotated[list[str] | None, typer.Option("--skill", help="A skill bidders must have (repeat).")] = None,
    verify: Annotated[str, typer.Option("--verify", help="tests, benchmark, review or approval.")] = "approval",
    tests_file: Annotated[Path | None, typer.Option("--tests-file", exists=True, dir_okay=False,
                                                    help="tests: Python defining check(candidate).")] = None,
    entry: Annotated[str | None, typer.Option("--entry", help="tests: the function the tests call.")] = None,
    problem: Annotated[str | None, typer.Option("--problem", help="benchmark: a coding problem id.")] = None,
    validator: Annotated[str | None, typer.Option("--validator", help="review: the agent that reviews.")] = None,
    poster: Annotated[str, typer.Option("--poster", help="The agent that posts and pays.")] = "colony",
    bond: Annotated[str | None, typer.Option("--bond", help="Bond per sealed bid: credits or NNNu.")] = None,
    commit_s: Annotated[int | None, typer.Option("--commit-s", min=1, max=86_400, help="Commit phase (s).")] = None,
    reveal_s: Annotated[int | None, typer.Option("--reveal-s", min=1, max=86_400, help="Reveal phase (s).")] = None,
    rule: Annotated[str, typer.Option("--rule", help="vickrey, first_price or random.")] = "vickrey",
    as_json: JsonOpt = False,
) -> None:
    """Put a task up for auction (its poster must hold the reserve).

    Examples:

        colony market post "Write digit_sum(n)" --reserve 5 --skill python --verify tests --tests-file t.py --entry digit_sum

        colony market post "Summarise NOTES.md" --reserve 2 --verify review --validator vera

        colony market post --task task_01HX… --verify benchmark --problem colony/t1-digit-sum --json
    """
    if verify not in get_args(Verification):
        fail(f"--verify {verify!r}: use one of {', '.join(get_args(Verification))}", ExitCode.USAGE)
    if rule not in get_args(Rule):
        fail(f"--rule {rule!r}: use one of {', '.join(get_args(Rule))}", ExitCode.USAGE)
    tests = None
    if tests_file is not None:
        try:
            tests = tests_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {tests_file}: {exc}", ExitCode.USAGE)
    body: dict[str, Any] = {"task_id": task, "goal": goal, "skills": skill or [], "verification": verify,
                            "tests": tests, "entry_point": entry, "problem": problem, "validator": validator,
                            "poster": poster, "reserve": _amount(reserve, "--reserve"), "bond": _amount(bond, "--bond"),
                            "commit_s": commit_s, "reveal_s": reveal_s, "rule": rule}
    try:
        request = AuctionRequest.model_validate({k: v for k, v in body.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors())
        fail(f"invalid auction: {problems}", ExitCode.USAGE)
    with _market() as market:
        detail = auction_detail(market, market.post(request))
    if as_json:
        print_json(detail.model_dump(mode="json", exclude={"events"}))
        return
    out.print(f"posted auction [bold]{detail.id[:12]}[/] for task {detail.task_id}", highlight=False)
    _print_detail(detail)


@market_app.command()
def award(auction: IdArg, as_json: JsonOpt = False) -> None:
    """Award an auction whose reveal deadline has passed (the worker does this by itself).

    Idempotent: an auction already awarded is shown as it is.

    Examples:

        colony market award 3fa2c1
    """
    with _market() as market:
        auction_id = market.resolve(auction)
        market.award(auction_id)
        detail = auction_detail(market, auction_id)
    if as_json:
        print_json(detail.model_dump(mode="json", exclude={"events"}))
        return
    _print_detail(detail)


@market_app.command()
def verdict(
    auction: IdArg,
    decision: Annotated[str, typer.Argument(metavar="pass|fail", help="Pay the winner, or refund and slash.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the signed verdict).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Decide an auction verified by a person (``--verify approval``) once its task is done.

    Examples:

        colony market verdict 3fa2c1 pass

        colony market verdict 3fa2c1 fail --reason "the summary misses section 3"
    """
    if decision not in ("pass", "fail"):
        fail(f"the decision is pass or fail, not {decision!r}", ExitCode.USAGE)
    with _market() as market:
        auction_id = market.resolve(auction)
        state = market.decide(auction_id, decision == "pass", actor="cli", reason=reason)
        detail = auction_detail(market, auction_id)
    if as_json:
        print_json(detail.model_dump(mode="json", exclude={"events"}))
        return
    out.print(f"auction {auction_id[:12]} {state}", highlight=False)


@market_app.command()
def recheck(auction: IdArg, as_json: JsonOpt = False) -> None:
    """Recompute an award's winner and price from the signed events alone; exit 1 if they differ.

    Examples:

        colony market recheck 3fa2c1
    """
    with _market() as market:
        result = market.recheck(market.resolve(auction))
    if as_json:
        print_json(result.model_dump(mode="json"))
    elif result.ok:
        out.print(f"[green]ok[/]: the events give winner {result.winner or '—'} at {_credits(result.price)} credits, "
                  "as awarded", highlight=False)
    else:
        for problem in result.problems:
            out.print(f"[red]✗[/] {escape(problem)}", highlight=False)
    if not result.ok:
        raise typer.Exit(int(ExitCode.FAILED))


@market_app.command()
def reputation(as_json: JsonOpt = False) -> None:
    """The reputation table: beta reputation from payment-backed ratings, stake, wins, earnings.

    Examples:

        colony market reputation --json
    """
    with _market() as market:
        rows = reputation_table(market)
    if as_json:
        print_json({"reputation": [r.model_dump(mode="json") for r in rows]})
        return
    table = Table(title="reputation")
    for column in ("agent", "reputation", "ratings", "staked", "wins", "earned"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    for r in rows:
        table.add_row(escape(r.name or r.account[:12]), f"{r.reputation:.3f}", str(r.ratings), format_amount(r.staked),
                      str(r.wins), format_amount(r.paid))
    out.print(table)


@market_app.command()
def run(
    no_work: Annotated[bool, typer.Option("--no-work", help="Bid, award and verify, but run no winner's task.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run one pass of the market worker: bids, reveals, awards, one winner's task, verification.

    Examples:

        colony market run

        colony market run --no-work --json
    """
    async def one_pass(market: Market) -> PassReport:
        try:
            return await market_pass(market.node, market=market, work=not no_work)
        finally:
            if market.node.cascade is not None:  # the model's HTTP clients belong to this event loop
                await market.node.cascade.aclose()

    with _market() as market:
        report = asyncio.run(one_pass(market))
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    for label, items in (("committed", report.commits), ("revealed", report.reveals), ("awarded", report.awarded),
                         ("settled", report.verified)):
        if items:
            out.print(f"{label}: {escape(', '.join(items))}", highlight=False)
    if report.ran:
        out.print(f"ran task {report.ran}: {report.run_outcome}", highlight=False)
    for error in report.errors:
        out.print(f"[yellow]{escape(error)}[/]", highlight=False)
    if not (report.commits or report.reveals or report.awarded or report.verified or report.ran):
        out.print("[dim]nothing to do[/]")
