"""Route prices: from configuration and from the ``x402_prices`` table, merged into one list.

A price names a route pattern in the SDK's syntax (``[METHOD ]/path`` with ``*`` wildcards, a
trailing ``/*`` also matching the bare prefix), an amount in micro-credits and/or token units of
the EVM rail, and the agent that is paid. A route with both amounts accepts both schemes; the
client picks. Table rows win over configuration for the same route, so an operator can reprice a
configured route at run time.
"""

from __future__ import annotations

import re
import time

from pydantic import BaseModel, ConfigDict, Field

from colony.config import PriceConfig, Settings
from colony.errors import ColonyError
from colony.ledger.amounts import MAX_AMOUNT, parse_amount
from colony.store import Database

__all__ = [
    "PriceError",
    "RoutePrice",
    "agent_route",
    "cartridge_route",
    "effective_prices",
    "list_prices",
    "remove_price",
    "sales_of",
    "set_price",
]

ROUTE = re.compile(r"^((GET|POST|PUT|PATCH|DELETE) )?/[A-Za-z0-9._~/*:-]*$")


class PriceError(ColonyError):
    """A price that cannot be used: the message says what to change."""


class RoutePrice(BaseModel):
    """One priced route, amounts already integers."""

    model_config = ConfigDict(frozen=True)

    route: str
    credits: int | None = Field(default=None, description="micro-credits")
    evm_amount: int | None = Field(default=None, description="atomic units of the EVM rail's token")
    pay_to: str = Field(description="the paid agent's name")
    description: str = ""
    source: str = "table"


def cartridge_route(slug: str) -> str:
    """Every method on a backend cartridge: ``/c/{slug}`` and below."""
    return f"/c/{slug}/*"


def agent_route(name: str) -> str:
    """The agent-as-a-service endpoint of agent ``name``."""
    return f"POST /x402/agents/{name}/prompt"


def _check(route: str, credits: int | None, evm_amount: int | None) -> None:
    if not ROUTE.fullmatch(route) or len(route) > 200:
        raise PriceError(f"{route!r} is not a route pattern: write '[METHOD ]/path', e.g. '/c/weather/*' or "
                         "'POST /x402/agents/default/prompt'.")
    if credits is None and evm_amount is None:
        raise PriceError("A price needs an amount: --credits (e.g. 0.05) and/or --evm (token units).")
    if credits is not None and not 0 < credits <= MAX_AMOUNT:
        raise PriceError(f"A credits price is 1 to {MAX_AMOUNT} micro-credits.")
    if evm_amount is not None and not 0 < evm_amount < 2**63:
        raise PriceError("An EVM price is a positive integer of the token's atomic units (USDC: 10000 = $0.01).")


def parse_credits(text: str | None) -> int | None:
    """Credits text ("0.05", "50000u") to micro-credits; PriceError with the fix otherwise."""
    if text is None or text == "":
        return None
    try:
        return parse_amount(text)
    except (ValueError, ColonyError) as exc:
        raise PriceError(f"{text!r} is not a credits amount: write credits like 0.05 or micro-credits like "
                         f"50000u ({exc}).") from exc


def set_price(db: Database, route: str, *, credits: int | None, evm_amount: int | None, pay_to: str,
              description: str = "") -> RoutePrice:
    _check(route, credits, evm_amount)
    db.execute(
        "INSERT INTO x402_prices(route, credits, evm_amount, pay_to, description, updated_at) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT(route) DO UPDATE SET credits = excluded.credits, evm_amount = excluded.evm_amount,"
        " pay_to = excluded.pay_to, description = excluded.description, updated_at = excluded.updated_at",
        (route, credits, evm_amount, pay_to, description[:200], time.time()))
    return RoutePrice(route=route, credits=credits, evm_amount=evm_amount, pay_to=pay_to, description=description)


def remove_price(db: Database, route: str) -> bool:
    with db.tx() as conn:
        conn.execute("DELETE FROM x402_prices WHERE route = ?", (route,))
        return bool(conn.changes())


def list_prices(db: Database) -> list[RoutePrice]:
    rows = db.query("SELECT route, credits, evm_amount, pay_to, description FROM x402_prices ORDER BY route")
    return [RoutePrice(source="table", **dict(r)) for r in rows]


def table_stamp(db: Database) -> tuple[int, float]:
    """Changes whenever the table does (row count, newest update), in one cheap statement."""
    row = db.one("SELECT count(*) AS n, coalesce(max(updated_at), 0) AS t FROM x402_prices")
    return (0, 0.0) if row is None else (int(row["n"]), float(row["t"]))  # a timestamp: not money


def from_config(entry: PriceConfig, default_agent: str) -> RoutePrice:
    credits = parse_credits(entry.credits)
    _check(entry.route, credits, entry.evm_amount)
    return RoutePrice(route=entry.route, credits=credits, evm_amount=entry.evm_amount,
                      pay_to=entry.pay_to or default_agent, description=entry.description, source="config")


def sales_of(db: Database, settings: Settings, agent: str, default_agent: str) -> tuple[bool, str | None]:
    """(paid over x402 for anything, the hire endpoint's path if its prompts are priced) — for its card."""
    mine = [p for p in effective_prices(db, settings, default_agent) if p.pay_to == agent]
    hire = agent_route(agent)
    return bool(mine), (hire.split(" ", 1)[1] if any(p.route == hire for p in mine) else None)


def effective_prices(db: Database, settings: Settings, default_agent: str) -> list[RoutePrice]:
    """Configuration first, then the table (which wins for a route both name)."""
    merged = {p.route: p for p in (from_config(e, default_agent) for e in settings.x402_routes)}
    merged.update({p.route: p for p in list_prices(db)})
    return list(merged.values())
