"""`colony price`: what the node charges over x402 (HTTP 402), per route.

Prices live in the node's database, so a running `colony up` picks up a change within a second.
A price has an amount in credits (``--credits``, paid from a ledger) and/or in token units of the
EVM rail (``--evm``); a route with both accepts either. Errors name the fix: exit 1 for a bad
price or an unknown agent, 4 when the database cannot be opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from colony.cli._common import ExitCode, fail, load, out, print_json, reporting
from colony.config import Settings
from colony.identity.store import DEFAULT_AGENT
from colony.ledger.amounts import format_amount
from colony.payments.prices import (
    PriceError,
    RoutePrice,
    agent_route,
    effective_prices,
    parse_credits,
    remove_price,
    set_price,
)
from colony.store import Database, open_database

__all__ = ["check_price", "price_app", "priced"]

price_app = typer.Typer(
    name="price",
    help=(
        "What this node charges over x402 (HTTP 402): a route pattern, a price in credits and/or EVM token "
        "units, and the agent that is paid.\n\n"
        "Examples:\n\n"
        "  colony price set '/c/weather/*' --credits 0.05\n\n"
        "  colony price agent colony --credits 0.5\n\n"
        "  colony price list --json"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)

CreditsOpt = Annotated[str | None, typer.Option("--credits", help="Price in credits (0.05) or micro-credits (50000u).")]
EvmOpt = Annotated[int | None, typer.Option("--evm", min=1, help="Price in the EVM rail token's atomic units "
                                            "(USDC: 10000 = $0.01).")]
PayToOpt = Annotated[str, typer.Option("--pay-to", help="The agent that is paid (see `colony identity show`).")]


@contextmanager
def _db() -> Iterator[tuple[Database, Settings]]:
    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            yield db, settings
        finally:
            db.close()


def _agent_names(db: Database, settings: Settings) -> set[str]:
    from colony.identity import Keyring

    return {i.name for i in Keyring(db, settings).all() if i.role == "agent"}


def check_price(db: Database, settings: Settings, credits: str | None, pay_to: str) -> int | None:
    """The price in micro-credits once the agent is known to exist; exits with the fix otherwise."""
    if pay_to not in _agent_names(db, settings):
        fail(f"{pay_to!r} is not an agent of this node", ExitCode.FAILED,
             "list them with `colony identity show`, or create one with `colony identity add NAME`")
    try:
        return parse_credits(credits)
    except PriceError as exc:
        fail(str(exc), ExitCode.FAILED)


def priced(db: Database, settings: Settings, route: str, credits: str | None, evm: int | None, pay_to: str,
           description: str = "") -> RoutePrice:
    """Set a price after checking the agent exists; exits with the fix on a bad price."""
    micro = check_price(db, settings, credits, pay_to)
    try:
        return set_price(db, route, credits=micro, evm_amount=evm, pay_to=pay_to, description=description)
    except PriceError as exc:
        fail(str(exc), ExitCode.FAILED)


def _show(price: RoutePrice) -> None:
    parts = ([f"{format_amount(price.credits)} credits"] if price.credits is not None else []) + (
        [f"{price.evm_amount} token units"] if price.evm_amount is not None else [])
    out.print(f"{escape(price.route)} costs {' or '.join(parts)}, paid to {escape(price.pay_to)}", highlight=False)


@price_app.command("set")
def set_(
    route: Annotated[str, typer.Argument(help="[METHOD ]/path, '*' wildcards: '/c/weather/*'.")],
    credits: CreditsOpt = None,
    evm: EvmOpt = None,
    pay_to: PayToOpt = DEFAULT_AGENT,
    description: Annotated[str, typer.Option(help="What the payer gets (shown in the 402).")] = "",
) -> None:
    """Price a route (replaces its earlier price).

    Examples:

        colony price set '/c/weather/*' --credits 0.05

        colony price set 'GET /c/report' --credits 1 --evm 10000 --pay-to analyst
    """
    with _db() as (db, settings):
        _show(priced(db, settings, route, credits, evm, pay_to, description))


@price_app.command()
def agent(
    name: Annotated[str, typer.Argument(help="The agent offered for hire.")],
    credits: CreditsOpt = None,
    evm: EvmOpt = None,
) -> None:
    """Offer an agent for hire: paid prompts at POST /x402/agents/NAME/prompt.

    Examples:

        colony price agent colony --credits 0.5
    """
    with _db() as (db, settings):
        _show(priced(db, settings, agent_route(name), credits, evm, name, f"a prompt answered by {name}"))


@price_app.command()
def remove(route: Annotated[str, typer.Argument(help="The route pattern, as listed.")]) -> None:
    """Stop charging for a route (a cartridge route is then private to the node's token again).

    Examples:

        colony price remove '/c/weather/*'
    """
    with _db() as (db, _):
        if not remove_price(db, route):
            fail(f"no price is set for {route!r}", ExitCode.FAILED, "see them with `colony price list`")
    out.print(f"{escape(route)} is free of charge", highlight=False)


@price_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the priced routes, from configuration and from `colony price set`.

    Examples:

        colony price list --json
    """
    with _db() as (db, settings):
        prices = effective_prices(db, settings, DEFAULT_AGENT)
    if as_json:
        print_json([p.model_dump() for p in prices])
        return
    table = Table("route", "credits", "EVM units", "paid to", "from", "description")
    for p in prices:
        table.add_row(escape(p.route), "" if p.credits is None else format_amount(p.credits),
                      "" if p.evm_amount is None else str(p.evm_amount), escape(p.pay_to), p.source,
                      escape(p.description))
    out.print(table)
