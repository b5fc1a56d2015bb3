"""Ledger storage: the `LedgerStore` protocol, its SQLite implementation, and `open_ledger_store`.

Why each SQLite write is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's single write
lock before anything is read, so the nonce check, the balance check and the chain heads an entry
links to cannot change underneath it (no time-of-check/time-of-use between two processes — the
"one lock per payer" of tempo-x402, here one lock for the node). Inside it the nonce is claimed
(its row written) before the entries are signed and appended; everything commits together or not
at all, so a process killed mid-transfer leaves nothing partial. A refusal that depends on the
ledger's state (insufficient funds) is itself the nonce's recorded result: the nonce is never
released and a retry gets the same refusal back.

What a write reads, decides and appends is `colony.ledger._writes` (shared with PostgreSQL);
the reads are `colony.ledger._reads`. The entries are signed inside the transaction through the
``sign`` callback because only there are the sequence, the previous hash and the balance known.
The Merkle tree over account heads is updated in the same transaction, so the state root always
matches the journal.

Which engine: `open_ledger_store` gives `colony.ledger.pg_store.PgLedgerStore` when
``COLONY_DATABASE_URL`` is set (row locks instead of the file lock), else `SqliteLedgerStore`.

Federation (later): a remote node's credit to one of our accounts arrives as its signed debit;
our node appends the matching credit to its own chain — the same append path — and the
accounts' ``home`` column says which node may sign which chain.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import apsw

from colony.errors import StoreError
from colony.ledger import _writes, machine
from colony.ledger._reads import LedgerReads, tuples
from colony.ledger._writes import EntrySigner
from colony.ledger.errors import LedgerError
from colony.ledger.records import (
    AccountView,
    Entry,
    HoldView,
    MintResult,
    SignedMint,
    SignedTransfer,
    TransferResult,
)
from colony.store._db import BUSY_TIMEOUT_MS, Database

if TYPE_CHECKING:
    from colony.config import Settings

__all__ = ["EntrySigner", "LedgerStore", "SqliteLedgerStore", "open_ledger_store"]


class LedgerStore(Protocol):
    """What the ledger needs from storage; every write is atomic and enforces the invariants."""

    def snapshot(self) -> AbstractContextManager[None]: ...
    def transfer_result(self, payer: str, nonce: str) -> TransferResult | None: ...
    def apply_transfer(self, signed: SignedTransfer, home: str, sign: EntrySigner) -> TransferResult: ...
    def apply_mint(self, signed: SignedMint, sign: EntrySigner, actor: str) -> MintResult: ...
    def close_hold(self, hold_id: str, to_state: machine.HoldState, payee: str | None,
                   sign: EntrySigner) -> HoldView: ...
    def account(self, account: str) -> AccountView | None: ...
    def accounts(self) -> list[AccountView]: ...
    def entries(self, account: str | None = None, *, limit: int | None = None,
                before_seq: int | None = None) -> list[Entry]: ...
    def scan_entries(self) -> Iterator[Entry]: ...
    def entries_after(self, account: str, after_seq: int, limit: int) -> list[Entry]: ...
    def scan_after(self, account: str, seq: int, limit: int) -> list[Entry]: ...
    def cited(self, entries: Sequence[Entry]) -> tuple[list[SignedTransfer], list[SignedMint]]: ...
    def transfers(self) -> list[tuple[SignedTransfer, str | None, str | None]]: ...
    def mints(self) -> list[SignedMint]: ...
    def hold(self, hold_id: str) -> HoldView: ...
    def holds(self, account: str | None = None) -> list[HoldView]: ...
    def memos(self, entries: list[Entry]) -> dict[str, str]: ...
    def supply(self) -> int: ...
    def entry_count(self) -> int: ...
    def root(self) -> str: ...
    def tree_children(self, prefix: str) -> dict[str, str]: ...
    def tree_nodes(self) -> dict[str, tuple[str, dict[str, str]]]: ...


def open_ledger_store(db: Database, settings: Settings) -> LedgerStore:
    """The node's ledger: on PostgreSQL when ``settings.database_url`` is set, else in ``db`` (SQLite).

    PostgreSQL is the process-wide migrated pool of `colony.store.pg.shared`, so every surface of
    one process shares its connections.
    """
    if settings.database_url is None:
        return SqliteLedgerStore(db)
    from colony.ledger.pg_store import PgLedgerStore  # psycopg is imported only when a URL is set
    from colony.store.pg.shared import require_pg

    return PgLedgerStore(require_pg(settings))


class _Waiter:
    """A busy handler: short randomised sleeps until the write lock frees, up to the store's timeout."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000

    def __call__(self, attempts: int) -> bool:
        if time.monotonic() >= self.deadline:
            return False
        time.sleep(random.uniform(0.0001, 0.0002 * min(attempts + 1, 10)))
        return True


class _SqliteTx:
    """`colony.ledger._writes.LedgerTx` over a ``BEGIN IMMEDIATE`` transaction: it already excludes every writer."""

    lock = ""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return tuples(self.conn, sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, params)

    def lock_accounts(self, accounts: Sequence[str]) -> None:
        """Nothing to do: the transaction holds the database's only write lock."""

    def lock_tree(self) -> None:
        """Nothing to do: the transaction holds the database's only write lock."""


class SqliteLedgerStore(LedgerReads):
    """`LedgerStore` over the node database (migration 9's tables)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes ---------------------------------------------------------------------------------
    def apply_transfer(self, signed: SignedTransfer, home: str, sign: EntrySigner) -> TransferResult:
        with self._tx() as tx:
            return _writes.apply_transfer(tx, signed, home, sign)

    def apply_mint(self, signed: SignedMint, sign: EntrySigner, actor: str) -> MintResult:
        with self._tx() as tx:
            return _writes.apply_mint(tx, signed, sign, actor)

    def close_hold(self, hold_id: str, to_state: machine.HoldState, payee: str | None,
                   sign: EntrySigner) -> HoldView:
        with self._tx() as tx:
            _writes.close_hold(tx, hold_id, to_state, payee, sign)
        return self.hold(hold_id)

    # -- reads ------------------------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.db.tuples(sql, params)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction around several reads (`LedgerReads.snapshot`); in WAL mode it blocks no writer."""
        conn = self.db.connection()
        if conn.in_transaction:  # already inside one (a caller's snapshot or write)
            yield
            return
        conn.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    # -- internals ------------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[_SqliteTx]:
        """`Database.tx()` with SQLite's refusals turned into errors that name the broken invariant.

        While it waits for the write lock, it polls every ~0.2-2 ms instead of SQLite's default
        back-off (1, 2, 5, 10 … 100 ms sleeps): a ledger write holds the lock for about a
        millisecond, so with several processes paying at once the default leaves the lock idle
        while everyone sleeps. The same overall timeout applies; the connection's own busy
        timeout is put back afterwards.
        """
        conn = self.db.connection()
        conn.set_busy_handler(_Waiter())
        try:
            with self.db.tx() as conn:
                yield _SqliteTx(conn)
        except apsw.ConstraintError as error:
            raise LedgerError(f"The ledger database refused the write: {error}") from error
        except apsw.Error as error:
            raise StoreError(f"Ledger write failed on {self.db.path}: {error}") from error
        finally:
            conn.set_busy_timeout(BUSY_TIMEOUT_MS)
