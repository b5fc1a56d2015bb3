"""`colony market` stake and governance commands: stake, propose, vote, veto, proposals, execute.

Stake is credits an agent holds in escrow from its own wallet (`colony.market.stakes`); it backs
bids and weighs votes. A proposal (`colony.market.governance`) changes one agent's approval tier
for one tool, a route's price, whether an agent is in service, or a market parameter; agents vote
with the stake they had when it was proposed, a passed proposal waits out a timelock (during
which the node owner may veto it, here or by denying it in the approvals queue), and then runs
once — by `colony market execute` or by a serving node by itself. Nothing here calls a model.

Amounts are credits (``1.5``) or micro-credits (``1500000u``). Proposal ids may be shortened to
their first characters (at least 6).

Exit codes: 0 ok · 1 refused (no funds or free stake, voting closed, already voted, not enough
stake to propose) · 2 bad arguments (unknown agent or proposal, a value out of bounds) · 3 keys
locked · 4 database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, cast, get_args

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from colony.cli._common import ExitCode, fail, load, out, print_json, reporting
from colony.cli.identity import announce
from colony.identity import Keyring
from colony.ledger import format_amount
from colony.ledger.amounts import parse_amount
from colony.market.events import MarketEventError
from colony.market.gov_service import (
    ExecutionView,
    ProposalView,
    execute_due,
    get_proposal,
    list_proposals,
    propose,
    resolve_id,
    veto,
    vote,
)
from colony.market.governance import (
    ACTION_ADAPTER,
    Action,
    Choice,
    GovernanceError,
    ParamName,
    Status,
)
from colony.market.stakes import StakeError, StakeView, deposit, stake_view, withdraw
from colony.store import open_database

__all__ = ["gov_app"]

gov_app = typer.Typer(
    help=("Stake and governance: agents stake credits, propose changes (a tool's approval tier for one agent, a "
          "price, admitting or expelling an agent, a market parameter), vote with their stake, and passed proposals "
          "run after a timelock unless the node owner vetoes them.\n\n"
          "Exit codes: 0 ok · 1 refused · 2 bad arguments · 3 keys locked · 4 database."),
    no_args_is_help=True,
    rich_markup_mode="rich",
)
stake_app = typer.Typer(help="An agent's stake: credits held from its own wallet.", no_args_is_help=True)
propose_app = typer.Typer(help="Propose a change; voting opens at once.", no_args_is_help=True)
gov_app.add_typer(stake_app, name="stake")
gov_app.add_typer(propose_app, name="propose")

AgentArg = Annotated[str, typer.Argument(metavar="AGENT", help="A hosted agent's name.")]
AmountArg = Annotated[str, typer.Argument(metavar="AMOUNT", help="Credits (1.5) or micro-credits (1500000u).")]
KeyOpt = Annotated[str | None, typer.Option("--key", help="Idempotency key: a retry with it moves the stake once.")]
ByOpt = Annotated[str, typer.Option("--by", help="Who proposes: 'node' (the owner) or a staked agent's name.")]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="The proposal's id, or its first characters (≥ 6).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print as JSON (amounts in micro-credits).")]


@contextmanager
def _keyring() -> Iterator[Keyring]:
    """The node's identities (created or unlocked as `colony identity` does), refusals as exit codes."""
    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            keyring = Keyring(db, settings)
            announce(keyring.ensure(announce=False))
            try:
                yield keyring
            except (StakeError, GovernanceError) as exc:
                usage = exc.reason in ("unknown", "not_found", "invalid")
                fail(str(exc), ExitCode.USAGE if usage else ExitCode.FAILED)
            except MarketEventError as exc:
                fail(str(exc), ExitCode.USAGE)
        finally:
            db.close()


def _amount(text: str) -> int:
    try:
        return parse_amount(text)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# -- stake ----------------------------------------------------------------------------------------


def _print_stake(view: StakeView, verb: str | None = None) -> None:
    head = f"{verb} · " if verb else ""
    out.print(f"{head}[bold]{escape(view.agent)}[/]: {format_amount(view.staked)} credits staked, "
              f"{format_amount(view.locked)} locked, {format_amount(view.free)} free to withdraw · wallet "
              f"{format_amount(view.balance)} available", highlight=False)


@stake_app.command("deposit")
def stake_deposit(agent: AgentArg, amount: AmountArg, key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Stake credits from the agent's wallet (a hold signed by its own key).

    Example: colony market stake deposit scout 10
    """
    micro = _amount(amount)
    with _keyring() as keyring:
        view = deposit(keyring, agent, micro, key=key)
    if as_json:
        print_json(view.model_dump())
    else:
        _print_stake(view, f"staked {format_amount(micro)}")


@stake_app.command("withdraw")
def stake_withdraw(agent: AgentArg, amount: AmountArg, key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Give stake back to the agent's wallet (not the part that backs open bids).

    Example: colony market stake withdraw scout 2.5
    """
    micro = _amount(amount)
    with _keyring() as keyring:
        view = withdraw(keyring, agent, micro, key=key)
    if as_json:
        print_json(view.model_dump())
    else:
        _print_stake(view, f"withdrew {format_amount(micro)}")


@stake_app.command("show")
def stake_show(agent: Annotated[str | None, typer.Argument(metavar="[AGENT]", help="One agent; all if omitted.")] = None,
               as_json: JsonOpt = False) -> None:
    """Each agent's stake: staked, locked by open bids, free to withdraw."""
    with _keyring() as keyring:
        names = [agent] if agent else [i.name for i in keyring.all() if i.role == "agent"]
        views = [stake_view(keyring, n) for n in names]
    if as_json:
        print_json([v.model_dump() for v in views])
        return
    table = Table("agent", "staked", "locked", "free", "wallet", box=None)
    for v in views:
        table.add_row(escape(v.agent), *(format_amount(x) for x in (v.staked, v.locked, v.free, v.balance)))
    out.print(table)


# -- proposing ------------------------------------------------------------------------------------


def _action(raw: dict[str, Any]) -> Action:
    try:
        return ACTION_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'action'}: {e['msg']}" for e in exc.errors())
        fail(f"invalid proposal: {problems}", ExitCode.USAGE)


def _submit(action: Action, by: str, as_json: bool) -> None:
    with _keyring() as keyring:
        view = propose(keyring, action, by=by)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    out.print(f"proposed [bold]{view.id[:12]}[/] by {escape(view.proposer_name)}: {escape(view.summary)}",
              highlight=False)
    out.print(f"voting until {_when(view.voting_ends)}; runs from {_when(view.executable_at)} if it passes "
              f"(quorum {view.quorum_bp / 100:g} % of {format_amount(view.total_weight)} credits staked)",
              highlight=False)


@propose_app.command("tool-tier")
def propose_tool_tier(agent: AgentArg, tool: Annotated[str, typer.Argument(help="The tool's name.")],
                      tier: Annotated[str, typer.Argument(help="allow, ask or auto.")],
                      by: ByOpt = "node", as_json: JsonOpt = False) -> None:
    """Give one agent its own approval tier for one tool.

    Example: colony market propose tool-tier scout write_file allow --by scout
    """
    _submit(_action({"type": "set_tool_tier", "agent": agent, "tool": tool, "tier": tier}), by, as_json)


@propose_app.command("price")
def propose_price(route: Annotated[str, typer.Argument(help="'[METHOD ]/path', e.g. 'POST /x402/agents/scout/prompt'.")],
                  pay_to: Annotated[str, typer.Option("--pay-to", help="The agent that is paid.")],
                  credits: Annotated[str | None, typer.Option("--credits", help="Credits per request (0.05).")] = None,
                  evm: Annotated[int | None, typer.Option("--evm", min=1, help="EVM token units per request.")] = None,
                  by: ByOpt = "node", as_json: JsonOpt = False) -> None:
    """Set an x402 route's price.

    Example: colony market propose price "POST /x402/agents/scout/prompt" --credits 0.3 --pay-to scout
    """
    _submit(_action({"type": "set_price", "route": route, "pay_to": pay_to, "evm_amount": evm,
                     "credits": None if credits is None else _amount(credits)}), by, as_json)


@propose_app.command("admit")
def propose_admit(agent: AgentArg, by: ByOpt = "node", as_json: JsonOpt = False) -> None:
    """Put a (deactivated) agent back in service."""
    _submit(_action({"type": "admit_agent", "agent": agent}), by, as_json)


@propose_app.command("expel")
def propose_expel(agent: AgentArg, by: ByOpt = "node", as_json: JsonOpt = False) -> None:
    """Take an agent out of service (its identity, wallet and history stay)."""
    _submit(_action({"type": "expel_agent", "agent": agent}), by, as_json)


@propose_app.command("param")
def propose_param(name: Annotated[str, typer.Argument(metavar="NAME", help=f"One of: {', '.join(get_args(ParamName))}.")],
                  value: Annotated[int, typer.Argument(help="An integer (basis points, micro-credits or seconds).")],
                  by: ByOpt = "node", as_json: JsonOpt = False) -> None:
    """Set a market or governance parameter (min_reputation in basis points: 2500 = 0.25).

    Example: colony market propose param slash_failed_bp 7500
    """
    _submit(_action({"type": "set_market_param", "name": name, "value": value}), by, as_json)


# -- voting, vetoing, reading, executing ------------------------------------------------------------


def _print_proposal(view: ProposalView, verb: str | None = None) -> None:
    if verb:
        out.print(f"{verb} [bold]{view.id[:12]}[/]", highlight=False)
    table = Table(show_header=False, box=None)
    table.add_column(style="dim")
    table.add_column(overflow="fold")
    rows = [("id", view.id), ("action", view.summary), ("status", view.status),
            ("proposed by", f"{view.proposer_name} at {_when(view.created_at)}"),
            ("voting until", _when(view.voting_ends)), ("runs from", _when(view.executable_at)),
            ("expires", _when(view.expires_at)),
            ("tally", f"yes {format_amount(view.yes)} · no {format_amount(view.no)} · abstain "
                      f"{format_amount(view.abstain)} of {format_amount(view.total_weight)} credits staked"),
            ("quorum", f"{view.quorum_bp / 100:g} % — {'met' if view.quorum_met else 'not met'}")]
    rows += [(f"vote {v.voter_name or v.voter[:12]}", f"{v.choice} ({format_amount(v.weight)})") for v in view.votes]
    if view.veto is not None:
        rows.append(("vetoed", f"via {view.veto.actor}: {view.veto.reason}"))
    if view.execution is not None:
        rows.append(("executed", f"{view.execution.outcome}: {view.execution.detail}"))
    for key, value in rows:
        table.add_row(key, escape(value))
    out.print(table)


@gov_app.command("vote")
def cast_vote(proposal: IdArg, choice: Annotated[str, typer.Argument(help="yes, no or abstain.")],
         voter: Annotated[str, typer.Option("--as", help="The voting agent (its stake at the proposal weighs).")],
         as_json: JsonOpt = False) -> None:
    """Vote on a proposal as one of the node's agents.

    Example: colony market vote 3f2a9c yes --as scout
    """
    if choice not in ("yes", "no", "abstain"):
        fail(f"{choice!r} is not a vote: yes, no or abstain", ExitCode.USAGE)
    chosen: Choice = "yes" if choice == "yes" else "no" if choice == "no" else "abstain"
    with _keyring() as keyring:
        view = vote(keyring, resolve_id(keyring, proposal), voter, chosen)
    if as_json:
        print_json(view.model_dump(mode="json"))
    else:
        _print_proposal(view, f"{voter} voted {choice} on")


@gov_app.command("veto")
def stop(proposal: IdArg, reason: Annotated[str, typer.Option("--reason", help="Why (kept in the log).")],
         as_json: JsonOpt = False) -> None:
    """The node owner's veto: the proposal never runs (any time before it executes)."""
    with _keyring() as keyring:
        view = veto(keyring, resolve_id(keyring, proposal), reason=reason)
    if as_json:
        print_json(view.model_dump(mode="json"))
    else:
        _print_proposal(view, "vetoed")


@gov_app.command("proposals")
def proposals(proposal: Annotated[str | None, typer.Argument(metavar="[ID]", help="Show one in full.")] = None,
              status: Annotated[str | None, typer.Option("--status", help="Only those in this state.")] = None,
              limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
              as_json: JsonOpt = False) -> None:
    """List proposals (newest first), or show one with its votes, tally, veto and execution."""
    states = get_args(Status)
    if status is not None and status not in states:
        fail(f"{status!r} is not a state: {', '.join(states)}", ExitCode.USAGE)
    with _keyring() as keyring:
        if proposal is not None:
            one = get_proposal(keyring, resolve_id(keyring, proposal))
            if as_json:
                print_json(one.model_dump(mode="json"))
            else:
                _print_proposal(one)
            return
        views = list_proposals(keyring, status_is=cast("Status | None", status), limit=limit)
    if as_json:
        print_json([v.model_dump(mode="json") for v in views])
        return
    if not views:
        out.print("no proposals")
        return
    table = Table("id", "status", "action", "by", "yes", "no", "runs from", box=None)
    for v in views:
        table.add_row(v.id[:12], v.status, escape(v.summary), escape(v.proposer_name), format_amount(v.yes),
                      format_amount(v.no), _when(v.executable_at))
    out.print(table)


@gov_app.command("execute")
def execute(as_json: JsonOpt = False) -> None:
    """Execute every proposal whose timelock has ended (once each; a serving node does this by itself)."""
    with _keyring() as keyring:
        done: list[ExecutionView] = execute_due(keyring, actor="cli")
    if as_json:
        print_json([d.model_dump() for d in done])
        return
    for d in done:
        out.print(f"executed {d.proposal_id[:12]}: {d.outcome} — {escape(d.detail)}", highlight=False)
    if not done:
        out.print("nothing due")
