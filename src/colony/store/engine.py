"""Tables a node keeps on either engine — the market's today — behind one small interface.

Why: each market step composes a ledger move, a task's transition and the market's own rows into
ONE transaction (`colony.market.service`). On SQLite that transaction is the node file's
``BEGIN IMMEDIATE``, which every store the thread uses joins (`Database.tx` nests); on PostgreSQL
it is `colony.store.pg.PgDatabase.thread_tx`, which the ledger's, the task queue's and the
records' stores over the same pool join the same way. So the market's code is written once, for
an `Engine`, and its SQL once, in SQLite's style (``?`` placeholders, rewritten for psycopg by
`colony.store.paramstyle`); where the dialects differ the caller asks `Engine.dialect`.

- `Sql`: reads, single statements, and ``tx()`` — a transaction the thread's later calls join.
  The node's `Database` is one as it is, so a function that only reads or writes takes either.
- `Engine`: a `Sql` that also runs a step as one transaction (`Engine.atomic`: on PostgreSQL run
  again whole after a deadlock or a lost race), takes named locks for the step (`Engine.lock`:
  PostgreSQL's transaction-level advisory locks; nothing on SQLite, whose write lock already
  keeps every other writer out), says how the database refused a statement
  (`Engine.refusal`), and whether another store's database is its own (`Engine.holds`).
- `open_engine`: the PostgreSQL engine when ``COLONY_DATABASE_URL`` is set, else the node's file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import apsw

from colony.store._db import Database, Row

if TYPE_CHECKING:
    from colony.config import Settings

__all__ = ["Dialect", "Engine", "Refusal", "Sql", "SqliteEngine", "open_engine"]

T = TypeVar("T")
Dialect = Literal["sqlite", "postgresql"]
#: How a database refused a statement: a unique key it would repeat, or any other constraint or trigger.
Refusal = Literal["unique", "refused"]


class Sql(Protocol):
    """Statements with ``?`` placeholders and rows as dicts, joined to the thread's open transaction."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...
    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement (in the thread's transaction if one is open); the int means nothing portable."""
        ...
    def tx(self) -> AbstractContextManager[Any]:
        """A transaction that this thread's calls join until it ends (nested use joins the open one)."""
        ...


class Engine(Sql, Protocol):
    """A `Sql` that runs steps: see the module docstring."""

    dialect: Dialect

    def atomic(self, work: Callable[[], T]) -> T:
        """``work`` in one transaction (joined if one is open); retried whole after a conflict."""
        ...
    def lock(self, *names: str) -> None:
        """Keep other steps that lock any of ``names`` out until this transaction ends (inside one only)."""
        ...
    def refusal(self, exc: BaseException) -> Refusal | None:
        """How the database refused the statement that raised ``exc``; None when it was no refusal."""
        ...
    def holds(self, database: object) -> bool:
        """Whether ``database`` (another store's) is this engine's own, so their writes share transactions."""
        ...


class SqliteEngine:
    """`Engine` over the node's SQLite file: one writer at a time, so steps need no locks or retries."""

    dialect: Dialect = "sqlite"

    def __init__(self, db: Database) -> None:
        self.db = db

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.db.query(sql, params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self.db.one(sql, params)

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.db.scalar(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, params)

    def tx(self) -> AbstractContextManager[apsw.Connection]:
        return self.db.tx()

    def atomic(self, work: Callable[[], T]) -> T:
        """``work`` under ``BEGIN IMMEDIATE``: the lock is taken before the first read, so nothing to retry."""
        with self.db.tx():
            return work()

    def lock(self, *names: str) -> None:
        """Nothing to do: the transaction holds the file's only write lock."""

    def refusal(self, exc: BaseException) -> Refusal | None:
        cause = exc if isinstance(exc, apsw.Error) else exc.__cause__
        if not isinstance(cause, apsw.ConstraintError):
            return None
        return "unique" if "UNIQUE constraint failed" in str(cause) else "refused"

    def holds(self, database: object) -> bool:
        return database is self.db


def open_engine(db: Database, settings: Settings) -> Engine:
    """The engine of the tables that follow ``COLONY_DATABASE_URL``: PostgreSQL when it is set, else ``db``.

    PostgreSQL is the process-wide migrated pool (`colony.store.pg.shared`), the one the ledger,
    the task queue and the records use, so their writes join the engine's transactions.
    """
    if settings.database_url is None:
        return SqliteEngine(db)
    from colony.store.pg.engine import PgEngine  # psycopg is imported only when a URL is set
    from colony.store.pg.shared import require_pg

    return PgEngine(require_pg(settings))
