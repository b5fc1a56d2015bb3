"""The ledger the market moves credits on — refused while the market cannot move them safely there.

Why a guard: every market step that moves credits (a bond held, an escrow held, captured or
released, stake deposited, withdrawn or slashed, a contribution bonus minted) runs in ONE SQLite
transaction with the market row that records why, and the market's tables check the ledger's
hold states in that same file (``market_auctions_backed`` and ``market_stake_holds_own`` read
``ledger_holds``; ``market_stake_holds.hold_id`` references it). When ``COLONY_DATABASE_URL``
moves the ledger to PostgreSQL but the market's tables are still in SQLite, a step would commit
its credit moves on PostgreSQL and then be refused by SQLite — credits held or paid with no
market record of why, and a random-nonce move repeated by the next try. So until the market's
tables are ported, a step that would move credits is refused before it moves any. Reading
balances and holds (reputation, the graph, agent listings) works on either engine.
"""

from __future__ import annotations

from colony.identity.keys import SchnorrKey
from colony.ledger import Ledger, LedgerStore, SqliteLedgerStore
from colony.market.events import MarketError

__all__ = ["MarketOnPostgresError", "market_ledger"]


class MarketOnPostgresError(MarketError):
    code = "market_needs_sqlite_ledger"


def market_ledger(store: LedgerStore, node_key: SchnorrKey) -> Ledger:
    """A signing `Ledger` over ``store`` for market steps; `MarketOnPostgresError` unless it is the node's SQLite."""
    if not isinstance(store, SqliteLedgerStore):
        raise MarketOnPostgresError(
            "The market cannot move credits yet on a node whose ledger is on PostgreSQL (COLONY_DATABASE_URL): "
            "its auctions and stakes are still kept in the node's SQLite file, and a step must record its "
            "credit moves in the same transaction. Unset COLONY_DATABASE_URL to use the market on this node.")
    return Ledger(store, node_key)
