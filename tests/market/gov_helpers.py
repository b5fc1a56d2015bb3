"""Shared set-up for the stake and governance tests: a node's keyring on a real database, hosted
agents with funded wallets, and the ledger that pays them. Times are Unix seconds from `T0`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from colony.config import Settings
from colony.identity import Keyring
from colony.ledger import Ledger, open_ledger_store
from colony.market import stakes
from colony.store import open_database
from colony.store.pg.shared import close_shared

T0 = 1_800_000_000
DAY = 86_400


@contextmanager
def node_keyring(settings: Settings | None = None) -> Iterator[Keyring]:
    """The node's keyring over its database (identities created on first use), closed afterwards with
    this process's PostgreSQL pools (the market's, with ``COLONY_DATABASE_URL``)."""
    settings = settings or Settings()
    db = open_database(settings.db_path)
    try:
        yield Keyring(db, settings)
    finally:
        close_shared()
        db.close()


def ledger_of(keyring: Keyring) -> Ledger:
    """The node's ledger: in its file, or on PostgreSQL with ``COLONY_DATABASE_URL`` (beside the market)."""
    return Ledger(open_ledger_store(keyring.db, keyring.settings), keyring.node().schnorr_key)


def hosted(keyring: Keyring, *names: str, funds: int = 0) -> None:
    """Create agents (their own keys and wallets) and mint ``funds`` micro-credits to each."""
    ledger = ledger_of(keyring)
    for name in names:
        ident = keyring.create_agent(name)
        if funds:
            ledger.mint(ident.public_hex, funds, "test funding")


def staked_agents(keyring: Keyring, stakes_by_name: dict[str, int], *, funds: int) -> None:
    """Agents with ``funds`` in their wallets, each staking its amount (0: none)."""
    hosted(keyring, *stakes_by_name, funds=funds)
    for name, amount in stakes_by_name.items():
        if amount:
            stakes.deposit(keyring, name, amount)


def balance(keyring: Keyring, name: str) -> tuple[int, int]:
    """(available, held) micro-credits of an agent's wallet."""
    view = ledger_of(keyring).balance(keyring.agent(name).public_hex)
    return view.balance, view.held
