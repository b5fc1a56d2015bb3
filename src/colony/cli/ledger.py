"""`colony ledger`: verify the journal, show and compare the state root, export a feed, mint.

`verify` needs no key: it recomputes every hash, signature, balance and the supply from the
database (or from an exported file, as a replica would) and names the first bad entry. `mint`
is the only way credits come into existence: a treasury order signed by the node's key, with a
reason, kept in an audit table.

Exit codes: 0 ok · 1 verification found a problem (or a mint was refused) · 2 bad arguments ·
3 keys locked (mint) · 4 database.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from colony.cli._common import ExitCode, err, fail, load, out, print_json, reporting
from colony.cli.wallet import amount_arg, open_wallet
from colony.config import Settings
from colony.ledger import VerifyReport, export_lines, format_amount, read_lines, verify_feed
from colony.ledger.feed import read_all
from colony.ledger.store import LedgerStore, open_ledger_store
from colony.observability.metrics import observe_ledger_verify
from colony.store import open_database

__all__ = ["ledger_app"]

ledger_app = typer.Typer(
    name="ledger",
    help=(
        "The credit ledger itself: verify it, show its state root, export it as signed events, mint credits.\n\n"
        "Exit codes: 0 ok · 1 verification failed or mint refused · 2 bad arguments · 3 keys locked · 4 database."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@contextmanager
def _store(settings: Settings) -> Iterator[LedgerStore]:
    """The node's ledger (PostgreSQL when ``COLONY_DATABASE_URL`` is set), read without unlocking any key."""
    with reporting():
        db = open_database(settings.db_path)
        try:
            yield open_ledger_store(db, settings)
        finally:
            db.close()


def _read_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--file") from None
    if text.lstrip().startswith("["):  # a --json export: one array of events
        try:
            return [json.dumps(event) for event in json.loads(text)]
        except (ValueError, TypeError) as exc:
            raise typer.BadParameter(f"{path} is not a JSON array of events: {exc}", param_hint="--file") from None
    return text.splitlines()


@ledger_app.command()
def verify(
    file: Annotated[Path | None, typer.Option("--file", help="Verify an exported feed (JSON lines or a JSON "
                                                             "array of events) instead of the database.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, max=64, help="Signature threads.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Recompute every chain, signature, balance and the supply; name the first bad entry.

    Examples:

        colony ledger verify

        colony ledger export > feed.jsonl && colony ledger verify --file feed.jsonl
    """
    if file is not None:
        report = verify_feed(read_lines(_read_file(file)), threads=threads)
    else:
        with _store(load()) as store:
            report = verify_feed(*read_all(store), threads=threads)
    observe_ledger_verify(report.ok)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        _show(report)
    if not report.ok:
        raise SystemExit(int(ExitCode.FAILED))


def _show(report: VerifyReport) -> None:
    rate = report.entries / report.seconds if report.seconds else 0.0
    summary = (f"{report.entries} entries in {report.accounts} accounts, {report.transfers} authorisations, "
               f"{report.mints} mints, {report.signatures} signatures; supply {format_amount(report.supply)} credits "
               f"({report.seconds:.2f} s, {rate:,.0f} entries/s)")
    if report.ok:
        partial = " (partial feed: pairing with absent accounts and the supply not checked)" if report.partial else ""
        out.print(f"[green]ok[/] {summary}{partial}", highlight=False)
        return
    first = report.problems[0]
    where = f"account {first.account} seq {first.seq}" if first.account else "the ledger as a whole"
    err.print("[bold red]FAILED[/] ", end="")
    err.print(f"first bad entry: {where} — {first.message} [{first.code}]", markup=False, highlight=False)
    if first.entry_id:
        err.print(f"  entry {first.entry_id}", markup=False, highlight=False)
    if len(report.problems) > 1:
        err.print(f"  … and {len(report.problems) - 1} more problem(s); --json lists them all", markup=False,
                  highlight=False)
    err.print(summary, markup=False, highlight=False)


@ledger_app.command()
def root(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """The state root: one hash over every account's head (two replicas agree iff their roots do).

    Examples:

        colony ledger root

        colony ledger root --json
    """
    with _store(load()) as store:
        data: dict[str, Any] = {"root": store.root(), "accounts": len(store.accounts()),
                                "entries": store.entry_count(), "supply": store.supply()}
    if as_json:
        print_json(data)
    else:
        out.print(f"{data['root']}  ({data['accounts']} accounts, {data['entries']} entries, supply "
                  f"{format_amount(data['supply'])} credits)", highlight=False)


@ledger_app.command()
def export(
    account: Annotated[str | None, typer.Option("--account", help="Only this agent's chain (name, npub or hex).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of JSON lines.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Write the ledger as signed events: the authorisations cited, then the entries in chain order.

    Examples:

        colony ledger export > feed.jsonl

        colony ledger export --account scout --json -o scout.json
    """
    settings = load()
    if account is not None:
        with open_wallet(settings) as w:
            chosen: str | None = w.account(account, "--account")
    else:
        chosen = None
    with _store(settings) as store:
        lines = list(export_lines(store, chosen))
    text = ("[\n" + ",\n".join(lines) + "\n]\n") if as_json else "".join(line + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}", ExitCode.FAILED)
    err.print(f"wrote {len(lines)} events to {output}", highlight=False)


@ledger_app.command()
def mint(
    agent: Annotated[str, typer.Argument(metavar="AGENT", help="Who receives: agent name, npub or hex key.")],
    amount: Annotated[str, typer.Argument(metavar="AMOUNT", help="Credits (10) or micro-credits (500u).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the treasury audit).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Create credits: a treasury order signed by the node's key, audited, counted in the supply.

    Examples:

        colony ledger mint colony 100 --reason "initial allocation"
    """
    micro = amount_arg(amount)
    if not reason.strip():
        raise typer.BadParameter("a mint needs a reason, kept in the treasury audit", param_hint="--reason")
    with open_wallet(load()) as w:
        result = w.ledger.mint(w.account(agent), micro, reason, actor=f"cli:{getpass.getuser()}")
        label = w.label(result.account)
    if as_json:
        print_json(result.model_dump())
        return
    out.print(f"minted {format_amount(micro)} credits to {label} ({reason.strip()}); balance "
              f"{format_amount(result.balance)}, supply {format_amount(result.supply)} · order "
              f"{result.treasury_id[:16]}…", markup=False, highlight=False)
