"""`colony.store.engine.Engine` on PostgreSQL: shared SQL, the thread's transaction, advisory locks.

SQLite's one write lock serialises every step of the market; here steps run at once, so what
that lock gave for free is taken explicitly:

- **one transaction per step**: `PgEngine.atomic` opens `PgDatabase.thread_tx`; the ledger's,
  the task queue's and the records' stores over the same pool join it, so a step's credit moves
  and the rows that record why commit together, or — after an error, or a ``SIGKILL`` that drops
  the connection — not at all. A deadlock or a race lost on a unique key rolls the step back and
  runs it again from the start (`colony.store.pg.CONFLICTS`);
- **named locks**: a step reads, decides, then writes (is the auction still open? is this stake
  free?). `PgEngine.lock` takes a transaction-level advisory lock per name — an auction, an
  agent's stake, a proposal — so two steps on the same thing serialise and the second decides
  on what the first committed. Locks are taken in one sorted batch per call;
- **refusals**: a constraint or a trigger's ``RAISE`` is a refusal (`PgEngine.refusal`), which
  the caller turns into its own error; a conflict is not, and propagates to the retry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from colony.errors import StoreError
from colony.store._db import Row
from colony.store.engine import Dialect, Refusal
from colony.store.paramstyle import format_style
from colony.store.pg._db import PgConnection, PgDatabase

__all__ = ["PgEngine", "name_lock"]

T = TypeVar("T")


def name_lock(name: str) -> int:
    """The advisory lock key of a name: 64 bits of a hash (a collision only serialises two names)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8, person=b"colony-named").digest(), "big",
                          signed=True)


class PgEngine:
    """`colony.store.engine.Engine` over a node's PostgreSQL pool."""

    dialect: Dialect = "postgresql"

    def __init__(self, pg: PgDatabase) -> None:
        self.pg = pg

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.pg.query(format_style(sql), params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self.pg.one(format_style(sql), params)

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.pg.scalar(format_style(sql), params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.pg.execute(format_style(sql), params)

    def tx(self) -> AbstractContextManager[PgConnection]:
        return self.pg.thread_tx()

    def atomic(self, work: Callable[[], T]) -> T:
        return self.pg.atomic(lambda _conn: work())

    def lock(self, *names: str) -> None:
        if not self.pg.in_thread_tx:
            raise StoreError("A market lock was asked for outside a step's transaction, where it would be released "
                             "at once; this is a bug in Colony.")
        with self.pg.tx() as conn:
            for key in sorted({name_lock(n) for n in names}):  # one order for every step
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))

    def refusal(self, exc: BaseException) -> Refusal | None:
        cause = exc.__cause__ if isinstance(exc, StoreError) else exc
        if isinstance(cause, pg_errors.UniqueViolation):
            return "unique"
        if isinstance(cause, psycopg.IntegrityError | pg_errors.RaiseException):
            return "refused"
        return None

    def holds(self, database: object) -> bool:
        return database is self.pg
