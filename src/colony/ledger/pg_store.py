"""The ledger on PostgreSQL: the `LedgerStore` the nodes of a colony share.

Same contract as `SqliteLedgerStore` — the same write algorithm (`colony.ledger._writes`), the
same reads (`colony.ledger._reads`), the same invariants enforced by the database (migration 9
on PostgreSQL, `colony.store.pg.ledger_schema`) — and the contract suite runs the same
assertions on both. What changes is how a write keeps other writers out when there is no single
file lock (each write is one READ COMMITTED transaction):

- **the nonce**: looked up first (a retry is answered without a lock), then claimed with
  ``INSERT … ON CONFLICT DO NOTHING`` before any entry is written: of two submissions of one
  nonce racing, the second waits for the first's commit, inserts nothing, and returns the
  recorded result — or ``nonce_already_used`` if it was another payment;
- **the accounts** a write touches are locked first with a transaction-level advisory lock
  each, keyed by a hash of the account id and taken in key order: an account that has no row
  yet (a payee's first credit, a first mint) cannot be locked with ``FOR UPDATE``, and without
  this two first credits would both link to the genesis hash and one would be refused. Then
  the heads are read with ``SELECT … FOR UPDATE`` in account-id order, so the balance checked
  is the balance debited. Two transfers between the same two accounts, in either direction,
  take the same locks in the same order instead of deadlocking; a hold's row is locked before
  its accounts, so two closings of one hold serialise and the second is refused;
- **the state tree**: every write changes the root, so the rehash is serialised by one
  transaction-level advisory lock, taken last (after every row lock) and held only for the four
  statements of the rehash and the commit; without it two writers would each rehash from the
  other's stale siblings and lose an update;
- **retries**: a deadlock, a serialization failure or a unique violation (which the locks above
  leave no path to; a retry is the safe answer if one happens anyway) rolls the whole
  transaction back; it is run again from the start, up to `ATTEMPTS` times, with a short
  jittered pause. Nothing of a failed attempt survives, and the entries are signed afresh;
- **a caller's transaction**: inside a step another store opened with
  `colony.store.pg.PgDatabase.thread_tx` (the market's: a hold, a task's transition and the
  market's rows commit together) a write joins that transaction and is not retried on its
  own — a conflict propagates, and the step is run again whole. Its row and advisory locks are
  then held until the step commits, so the step's later writes see what it decided;
- **snapshots**: `snapshot` opens a REPEATABLE READ, READ ONLY transaction, and the reads made
  inside it on the same thread use its connection, so a verification sees one moment while
  writers go on.

Errors: a write the database refuses (a CHECK, a trigger, a unique violation left after the
retries) is a `LedgerError` naming the invariant, as on SQLite; anything else is the pool's
`StoreError`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import tuple_row

from colony.errors import StoreError
from colony.ledger import _writes, machine
from colony.ledger._reads import LedgerReads
from colony.ledger._writes import EntrySigner, LedgerTx
from colony.ledger.errors import LedgerError
from colony.ledger.records import HoldView, MintResult, SignedMint, SignedTransfer, TransferResult
from colony.store.paramstyle import format_style
from colony.store.pg import ATTEMPTS, CONFLICTS, PgConnection, PgDatabase

__all__ = ["ATTEMPTS", "TREE_LOCK", "PgLedgerStore", "account_lock"]

#: The advisory lock of the state tree (any constant other users of the server will not pick:
#: "ledger" in ASCII).
TREE_LOCK = 0x6C6564676572
#: Refusals by the schema: a CHECK, a NOT NULL, a unique or foreign key, a trigger's RAISE.
_REFUSED = (psycopg.IntegrityError, pg_errors.RaiseException)

T = TypeVar("T")


class _PgTx:
    """`colony.ledger._writes.LedgerTx` over one READ COMMITTED transaction: row locks and the tree's lock."""

    lock = " FOR UPDATE"

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.cursor(row_factory=tuple_row).execute(format_style(sql), params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(format_style(sql), params)

    def lock_accounts(self, accounts: Sequence[str]) -> None:
        for key in sorted({account_lock(a) for a in accounts}):  # one order for every writer
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))

    def lock_tree(self) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (TREE_LOCK,))


def account_lock(account: str) -> int:
    """The advisory lock key of an account: 64 bits of a hash of its id (a collision only serialises two accounts)."""
    return int.from_bytes(hashlib.blake2b(account.encode(), digest_size=8, person=b"colony-ledger").digest(), "big",
                          signed=True)


class PgLedgerStore(LedgerReads):
    """`LedgerStore` over a PostgreSQL pool (migration 9's tables on PostgreSQL)."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self._snapshots = threading.local()

    # -- writes ---------------------------------------------------------------------------------
    def apply_transfer(self, signed: SignedTransfer, home: str, sign: EntrySigner) -> TransferResult:
        return self._write(lambda tx: _writes.apply_transfer(tx, signed, home, sign))

    def apply_mint(self, signed: SignedMint, sign: EntrySigner, actor: str) -> MintResult:
        return self._write(lambda tx: _writes.apply_mint(tx, signed, sign, actor))

    def close_hold(self, hold_id: str, to_state: machine.HoldState, payee: str | None,
                   sign: EntrySigner) -> HoldView:
        self._write(lambda tx: _writes.close_hold(tx, hold_id, to_state, payee, sign))
        return self.hold(hold_id)

    def _write(self, work: Callable[[LedgerTx], T]) -> T:
        """``work`` in one transaction, run again from the start after a deadlock or a lost race.

        Inside a caller's `thread_tx` it joins it, and a conflict is left to the caller's retry.
        """
        try:
            return self.db.atomic(lambda conn: work(_PgTx(conn)))
        except StoreError as exc:  # the pool's translation of psycopg's error, which is its cause
            cause = exc.__cause__
            if isinstance(cause, CONFLICTS):
                if self.db.in_thread_tx:
                    raise
                raise StoreError(f"A ledger write on {self.db.where} kept conflicting with other writers "
                                 f"({ATTEMPTS} tries): {_first_line(cause)}. Try again.") from cause
            if isinstance(cause, _REFUSED):
                raise LedgerError(f"The ledger database refused the write: {_first_line(cause)}") from cause
            raise

    # -- reads ----------------------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn: PgConnection | None = getattr(self._snapshots, "conn", None)
        if conn is not None:
            return conn.cursor(row_factory=tuple_row).execute(format_style(sql), params).fetchall()
        return [tuple(r.values()) for r in self.db.query(format_style(sql), params)]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A REPEATABLE READ, READ ONLY transaction that this thread's reads use until it ends.

        Nested use joins the open snapshot, and inside a caller's `thread_tx` the reads already
        run in that transaction. A writer is never blocked by it.
        """
        if getattr(self._snapshots, "conn", None) is not None or self.db.in_thread_tx:
            yield
            return
        with self.db.tx() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            self._snapshots.conn = conn
            try:
                yield
            finally:
                self._snapshots.conn = None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
