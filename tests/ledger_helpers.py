"""Shared helpers for the ledger tests: a real SQLite ledger, a settable clock, funded accounts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from colony.identity import SchnorrKey
from colony.ledger import Ledger, SqliteLedgerStore
from colony.store import Database, open_database


class Clock:
    """A clock the test moves; starts at the real time so created_at values look normal."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


@dataclass
class Book:
    """A ledger on its own database file, with the node key and a settable clock."""

    path: Path
    db: Database
    node_key: SchnorrKey
    clock: Clock
    ledger: Ledger
    keys: list[SchnorrKey] = field(default_factory=list)

    @property
    def store(self) -> SqliteLedgerStore:
        store = self.ledger.store
        assert isinstance(store, SqliteLedgerStore)
        return store

    def balance(self, key: SchnorrKey | str) -> int:
        return self.ledger.balance(key if isinstance(key, str) else key.public_hex).balance

    def close(self) -> None:
        self.db.close()


def open_book(path: Path, node_key: SchnorrKey | None = None, *, accounts: int = 0, funds: int = 0,
              clock: Clock | None = None) -> Book:
    db = open_database(path)
    key = node_key or SchnorrKey.generate()
    clock = clock or Clock()
    book = Book(path=path, db=db, node_key=key, clock=clock, ledger=Ledger(SqliteLedgerStore(db), key, clock=clock))
    for _ in range(accounts):
        k = SchnorrKey.generate()
        book.keys.append(k)
        if funds:
            book.ledger.mint(k.public_hex, funds, "test funding")
    return book
