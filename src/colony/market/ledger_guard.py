"""The ledger the market moves credits on: the one in the market's own database, or none.

Why a guard: every market step that moves credits (a bond held, an escrow held, captured or
released, stake deposited, withdrawn or slashed, a contribution bonus minted) runs in ONE
transaction with the market row that records why, and the market's tables check the ledger's
hold states in that same database (``market_auctions_backed`` and ``market_stake_holds_own``
read ``ledger_holds``; ``market_stake_holds.hold_id`` references it). That holds when the ledger
and the market's tables share a database: the node's SQLite file, or the PostgreSQL database of
``COLONY_DATABASE_URL``, where the ledger's writes join the market's step
(`colony.store.pg.PgDatabase.thread_tx`). On a node both follow that one setting
(`colony.ledger.open_ledger_store`, `colony.store.engine.open_engine`) and always agree; a ledger
in another database (a store built by hand, another server) would let a step commit its credit
moves there and then be refused here — credits held or paid with no market record of why — so it
is refused before any credit moves. Reading balances and holds needs no guard.
"""

from __future__ import annotations

from colony.identity.keys import SchnorrKey
from colony.ledger import Ledger, LedgerStore
from colony.market.events import MarketError
from colony.store.engine import Engine

__all__ = ["MarketLedgerElsewhereError", "market_ledger"]


class MarketLedgerElsewhereError(MarketError):
    code = "market_ledger_elsewhere"


def market_ledger(store: LedgerStore, engine: Engine, node_key: SchnorrKey) -> Ledger:
    """A signing `Ledger` over ``store`` for market steps; `MarketLedgerElsewhereError` unless ``store``
    keeps its rows in ``engine``'s database (both stores keep theirs in a ``db`` attribute)."""
    if not engine.holds(getattr(store, "db", None)):
        raise MarketLedgerElsewhereError(
            f"The market's tables are on {engine.dialect} but this ledger keeps its rows in another database: a "
            "market step must record its credit moves in the transaction that makes them. Open both from the "
            "node's settings (COLONY_DATABASE_URL decides where both live).")
    return Ledger(store, node_key)
