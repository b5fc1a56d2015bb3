"""`colony wallet`: balances, payments and history of this node's agents (and any account).

An agent is named by its identity name (``colony``, ``scout``), its npub or its hex public key.
Amounts are credits with up to six decimals (``1.5``) or micro-credits (``1500000u``); they are
parsed once, here, and are integers of micro-credits from then on. A payment is signed with the
paying agent's own key from the identity store — the node never pays on an agent's behalf
without it.

Exit codes: 0 ok · 1 refused (insufficient funds, a nonce already used) · 2 bad arguments
(amount, unknown agent) · 3 the keys are locked (passphrase missing or wrong) · 4 database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from colony.cli._common import ExitCode, fail, load, out, print_json, reporting
from colony.cli.identity import announce
from colony.config import Settings
from colony.identity import DEFAULT_AGENT, Keyring
from colony.identity.keys import npub
from colony.ledger import (
    Entry,
    InvalidAuthorisationError,
    Ledger,
    TransferRefusedError,
    account_id,
    format_amount,
    open_ledger_store,
    parse_amount,
)
from colony.ledger.wire import DELTA
from colony.store import open_database

__all__ = ["Wallet", "open_wallet", "wallet_app"]

wallet_app = typer.Typer(
    name="wallet",
    help=(
        "Credits of this node's agents: balances, signed payments, history.\n\n"
        "1 credit = 1,000,000 micro-credits; every amount is kept as an integer. Exit codes: 0 ok · 1 refused · "
        "2 bad arguments · 3 keys locked · 4 database."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


class Wallet:
    """The node's ledger with its identities, for the commands: names in, public keys out."""

    def __init__(self, keyring: Keyring, ledger: Ledger) -> None:
        self.keyring, self.ledger = keyring, ledger
        found = keyring.all()
        self.names = {i.public_hex: i.name for i in found}
        self._agents = [i.public_hex for i in found if i.role == "agent"]

    def account(self, who: str, param: str = "AGENT") -> str:
        """An identity name, npub or hex key → the account id (exit 2 when it is none of them)."""
        if who in self.names.values():
            return next(pub for pub, name in self.names.items() if name == who)
        try:
            return account_id(who)
        except InvalidAuthorisationError:
            raise typer.BadParameter(f"{who!r} is not an agent of this node (see `colony identity show`), an "
                                     "npub or a hex public key", param_hint=param) from None

    def label(self, account: str | None) -> str:
        if account is None:
            return ""
        return self.names.get(account) or npub(account)[:16] + "…"

    def agents(self) -> list[str]:
        return list(self._agents)


@contextmanager
def open_wallet(settings: Settings) -> Iterator[Wallet]:
    """The node's database, identities (created or unlocked; exit 3 when locked) and ledger."""
    with reporting():
        db = open_database(settings.db_path)
        try:
            keyring = Keyring(db, settings)
            announce(keyring.ensure(announce=False))
            yield Wallet(keyring, Ledger(open_ledger_store(db, settings), keyring.node().schnorr_key))
        finally:
            db.close()


def amount_arg(text: str, param: str = "AMOUNT") -> int:
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=param) from None


def when(stamp: int) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def signed(entry: Entry) -> int:
    """The entry's effect on the available balance, signed (a capture moves held credits: 0)."""
    return DELTA[entry.body.kind] * entry.body.amount


@wallet_app.command()
def balance(
    agent: Annotated[str | None, typer.Argument(metavar="[AGENT]", help="Name, npub or hex key (default: all agents).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON (amounts in micro-credits).")] = False,
) -> None:
    """Show available and held credits.

    Examples:

        colony wallet balance

        colony wallet balance scout --json
    """
    with open_wallet(load()) as w:
        accounts = [w.account(agent)] if agent else w.agents()
        views = [w.ledger.balance(a) for a in accounts]
        rows: list[dict[str, Any]] = [{"agent": w.label(v.account), "account": v.account, "npub": npub(v.account), "balance": v.balance,
                 "held": v.held, "seq": v.seq} for v in views]
    if as_json:
        print_json(rows[0] if agent else rows)
        return
    table = Table(title="balances (credits)")
    for column in ("agent", "available", "held", "entries", "account"):
        table.add_column(column, justify="right" if column in ("available", "held", "entries") else "left")
    for r in rows:
        table.add_row(escape(r["agent"]), format_amount(r["balance"]), format_amount(r["held"]), str(r["seq"]),
                      r["npub"])
    out.print(table)


@wallet_app.command()
def transfer(
    to: Annotated[str, typer.Argument(metavar="TO", help="Payee: agent name, npub or hex key.")],
    amount: Annotated[str, typer.Argument(metavar="AMOUNT", help="Credits (1.5) or micro-credits (1500000u).")],
    payer: Annotated[str, typer.Option("--from", help="The paying agent of this node (signs with its key).")] = DEFAULT_AGENT,
    memo: Annotated[str, typer.Option("--memo", help="A note kept with the signed payment (≤ 256 characters).")] = "",
    nonce: Annotated[str | None, typer.Option("--nonce", help="64 hex: retry an earlier payment (same fields) "
                                                              "without paying twice.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Pay credits from one of this node's agents, signed with its key; safe to retry with --nonce.

    Examples:

        colony wallet transfer scout 2.5 --memo "for the summary"

        colony wallet transfer npub1… 1000u --from scout
    """
    micro = amount_arg(amount)
    if nonce is not None and (len(nonce) != 64 or any(c not in "0123456789abcdef" for c in nonce)):
        raise typer.BadParameter("a nonce is 64 lowercase hex characters", param_hint="--nonce")
    with open_wallet(load()) as w:
        source, target = w.account(payer, "--from"), w.account(to, "TO")
        if w.names.get(source) is None:
            fail(f"{payer!r} is not an agent of this node: only its own agents' keys can sign here",
                 ExitCode.USAGE, "list them with: colony identity show")
        key = w.keyring.schnorr_key(w.names[source])
        try:
            result = w.ledger.pay(key, target, micro, memo=memo, nonce=nonce)
        except TransferRefusedError as exc:
            fail(str(exc), ExitCode.FAILED, "check the balance with: colony wallet balance")
        except InvalidAuthorisationError as exc:
            fail(str(exc), ExitCode.USAGE if exc.code in ("invalid_payload", "self_payment", "payment_to_node")
                 else ExitCode.FAILED)
        label = w.label(target)
    if as_json:
        print_json(result.model_dump())
        return
    again = " (already applied: the first result)" if result.replayed else ""
    out.print(f"paid {format_amount(micro)} credits to {escape(label)}{again}; {escape(payer)} has "
              f"{format_amount(result.payer_balance)} left · transfer {result.transfer_id[:16]}… nonce {result.nonce}",
              highlight=False)


@wallet_app.command()
def history(
    agent: Annotated[str, typer.Argument(metavar="[AGENT]", help="Name, npub or hex key.")] = DEFAULT_AGENT,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Newest entries to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """The newest entries of an account's chain: what moved, the balance after, with whom, why.

    Examples:

        colony wallet history

        colony wallet history scout --limit 200 --json
    """
    with open_wallet(load()) as w:
        account = w.account(agent)
        entries = w.ledger.history(account, limit=limit)
        memos = w.ledger.store.memos(entries)
        rows: list[dict[str, Any]] = [{**e.as_dict(), "change": signed(e), "memo": memos.get(e.id, ""),
                                       "counterparty_name": w.label(e.body.counterparty)} for e in entries]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"history of {escape(agent)} (credits, newest first)")
    for column in ("#", "time (UTC)", "kind", "change", "balance", "with", "memo"):
        table.add_column(column, justify="right" if column in ("#", "change", "balance") else "left")
    for r in rows:
        change = r["change"]
        table.add_row(str(r["seq"]), when(r["created_at"]), r["kind"],
                      ("+" if change > 0 else "") + format_amount(change), format_amount(r["balance"]),
                      escape(r["counterparty_name"]), escape(r["memo"]))
    out.print(table)


@wallet_app.command()
def payments(
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's payments (its name).")] = None,
    direction: Annotated[str | None, typer.Option("--direction", help="in (received) or out (made).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Newest payments to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the journal rows as JSON.")] = False,
) -> None:
    """The x402 payments journal: received for priced routes (in) and made by agents (out), refusals included.

    Amounts are atomic units of each payment's asset (micro-credits for credits); the table shows
    credits as credits.

    Examples:

        colony wallet payments

        colony wallet payments --agent scout --direction out --json
    """
    from colony.payments.journal import open_journal
    from colony.payments.paying import describe_amount

    if direction not in (None, "in", "out"):
        raise typer.BadParameter("in or out", param_hint="--direction")
    with open_wallet(load()) as w:
        if agent is not None and agent not in w.names.values():
            raise typer.BadParameter(f"{agent!r} is not an agent of this node (see `colony identity show`)",
                                     param_hint="--agent")
        records = open_journal(w.keyring.db, w.keyring.settings).payments(
            agent=agent, limit=limit, direction="in" if direction == "in" else "out" if direction == "out" else None)
        labels = {**w.names, **{i.evm_address.lower(): i.name for i in w.keyring.all()}}
    if as_json:
        print_json([r.model_dump() for r in records])
        return
    table = Table(title="x402 payments (newest first)")
    for column in ("#", "time (UTC)", "dir", "agent", "scheme", "amount", "counterparty", "resource", "status", "tx"):
        table.add_column(column, justify="right" if column in ("#", "amount") else "left")
    for r in records:
        other = r.pay_to if r.direction == "out" else (r.payer or "")
        status = r.status + (f": {r.reason}" if r.reason else "")
        table.add_row(str(r.id), when(int(r.at)), r.direction, escape(r.agent or ""), escape(r.scheme),
                      escape(describe_amount(r.network, r.asset, r.amount) if r.scheme else ""),
                      escape(labels.get(other.lower()) or other[:18]), escape(r.resource), escape(status),
                      escape((r.tx or "")[:16]))
    out.print(table)
