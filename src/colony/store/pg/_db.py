"""A node's PostgreSQL database: a psycopg 3 connection pool, transactions, and LISTEN.

Why a pool: many workers of one node (threads, the server's requests) share a bounded number of
server connections, and a connection broken by a server restart is replaced instead of failing
every later call. Connections run in autocommit; `tx()` opens an explicit transaction, so a
read never holds a snapshot (or locks) longer than its statement.

Why one separate listening connection: ``LISTEN`` is a property of a session, and a session
waiting for notifications cannot serve queries. The database keeps one long-lived connection
outside the pool for it; notifications that arrive while nobody waits stay in its socket and
are read by the next wait, so none is lost between two waits.

Why a thread's transaction (`thread_tx`): a step that spans several stores — the market's,
where a ledger hold, a task's transition and the market's own rows must commit together or not
at all — opens one transaction, and every call the same thread makes on this database until it
ends (`tx`, `query`, `one`, `scalar`, `execute`, and so the ledger's, the task queue's and the
records' stores over it) joins it instead of taking a pooled connection of its own, as a nested
`colony.store.Database.tx` joins the outer one on SQLite. Nothing joins unless a caller opened
one, so every other use is unchanged. `atomic` is the retrying form: a deadlock or a lost race
(`CONFLICTS`) rolls the whole step back and runs it again from the start. Such a step must not
await while it is open: another coroutine of the same thread would join it.

Errors: psycopg's errors become `StoreError` at this boundary (the message names the server
without its password and says what to check); Colony's own errors raised inside a transaction
roll it back and pass through unchanged.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import Connection, sql
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from colony.errors import StoreError

__all__ = ["ATTEMPTS", "CONFLICTS", "PgConnection", "PgDatabase", "describe_url"]

PgConnection = Connection[DictRow]
Params = Sequence[Any] | dict[str, Any]
T = TypeVar("T")

#: How long opening the pool waits for its first connection before telling the user.
CONNECT_TIMEOUT_S = 10.0
#: Conflicts that roll a transaction back and are worth running again from the start: a deadlock
#: between writers that lock in different orders, and a race lost on a unique key.
CONFLICTS = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.UniqueViolation)
#: Tries of one `PgDatabase.atomic` step before its conflict is reported (each try is a whole transaction).
ATTEMPTS = 12


def describe_url(url: str) -> str:
    """``host:port/db`` (or the socket folder) of a URL, never its password: for messages and doctor."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparseable COLONY_DATABASE_URL"
    host = str(parts.get("host") or "localhost")
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or parts.get('user') or 'postgres'}"


def _connection_error(url: str, exc: BaseException) -> StoreError:
    return StoreError(
        f"Cannot reach PostgreSQL at {describe_url(url)}: {str(exc).strip() or type(exc).__name__}. Check that the "
        "server runs and accepts this user, or fix COLONY_DATABASE_URL (unset it to use the node's SQLite database)."
    )


class PgDatabase:
    """A URL plus a pool. Use `tx()` to write (or read under locks) and `query()`/`one()` to read.

    Args:
        url: a ``postgresql://`` URL.
        min_size, max_size: connections the pool keeps open and may open at most.
        name: shown as ``application_name`` in ``pg_stat_activity``.
    """

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8, name: str = "colony") -> None:
        self.url = url
        self.where = describe_url(url)
        self._name = name
        self._listener: PgConnection | None = None
        self._listen_lock = threading.Lock()
        self._thread = threading.local()  # ``conn``: this thread's `thread_tx`, while one is open
        try:  # one direct attempt first: a refused connection fails at once, with the server's own words
            psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT_S)).close()
        except psycopg.Error as exc:
            raise _connection_error(url, exc) from exc
        self.pool: ConnectionPool[PgConnection] = ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, name=name,
            connection_class=Connection[DictRow],
            kwargs={"autocommit": True, "row_factory": dict_row, "application_name": name},
        )
        try:
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (PoolTimeout, psycopg.Error) as exc:
            self.pool.close()
            raise _connection_error(url, exc) from exc

    # -- transactions and reads ------------------------------------------------------------------
    @property
    def in_thread_tx(self) -> bool:
        """Whether this thread has a `thread_tx` open on this database (its calls join it)."""
        return getattr(self._thread, "conn", None) is not None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """psycopg's errors as `StoreError` (the cause kept); Colony's own pass through."""
        try:
            yield
        except pg_errors.TransactionRollback as exc:  # a deadlock or a serialisation failure: the server is fine
            raise StoreError(f"PostgreSQL at {self.where} rolled a transaction back: {str(exc).strip()}") from exc
        except psycopg.OperationalError as exc:
            raise _connection_error(self.url, exc) from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL at {self.where} refused a statement: {str(exc).strip()}") from exc

    @contextmanager
    def tx(self) -> Iterator[PgConnection]:
        """One transaction on a pooled connection: committed on success, rolled back on any error.

        Inside this thread's `thread_tx` it is that transaction (joined: no commit of its own).
        """
        joined: PgConnection | None = getattr(self._thread, "conn", None)
        with self._errors():
            if joined is not None:
                yield joined
                return
            with self.pool.connection() as conn, conn.transaction():
                yield conn

    @contextmanager
    def thread_tx(self) -> Iterator[PgConnection]:
        """A transaction that this thread's other calls on this database join until it ends.

        Nested use joins the open one. See the module docstring for why and when.
        """
        if self.in_thread_tx:
            with self.tx() as conn:
                yield conn
            return
        with self.tx() as conn:
            self._thread.conn = conn
            try:
                yield conn
            finally:
                self._thread.conn = None

    def atomic(self, work: Callable[[PgConnection], T], *, attempts: int = ATTEMPTS) -> T:
        """``work`` in one `thread_tx`, run again from the start after a conflict (`CONFLICTS`).

        Inside an open `thread_tx` it joins it and is not retried: the outermost step is, whole.
        After the last try the conflict's `StoreError` is raised (its cause names the conflict).
        """
        if self.in_thread_tx:
            with self.tx() as conn:
                return work(conn)
        for attempt in range(1, attempts + 1):
            try:
                with self.thread_tx() as conn:
                    return work(conn)
            except StoreError as exc:  # the translation of psycopg's error, which is its cause
                if not isinstance(exc.__cause__, CONFLICTS) or attempt == attempts:
                    raise
                time.sleep(random.uniform(0.0, 0.002 * attempt))  # a scattered pause: the two do not meet again
        raise AssertionError("unreachable: the last attempt returns or raises")

    @contextmanager
    def _statement(self) -> Iterator[PgConnection]:
        """A pooled connection for one statement, which autocommit runs as its own transaction.

        A single statement (data-modifying CTEs included) is atomic on its own, and skipping
        BEGIN/COMMIT saves two round trips: the queue's hot path (claim, complete) is one each.
        Inside this thread's `thread_tx` the statement runs in it.
        """
        joined: PgConnection | None = getattr(self._thread, "conn", None)
        with self._errors():
            if joined is not None:
                yield joined
                return
            with self.pool.connection() as conn:
                yield conn

    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        with self._statement() as conn:
            return conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Params | None = None) -> dict[str, Any] | None:
        with self._statement() as conn:
            return conn.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: Params | None = None) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement (atomic on its own); return the rows it changed."""
        with self._statement() as conn:
            return conn.execute(sql, params).rowcount

    # -- notifications ---------------------------------------------------------------------------
    def wait_notify(self, channel: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a ``NOTIFY`` on ``channel``; True when one came.

        The first call starts listening and returns True at once: anything sent before the
        ``LISTEN`` took effect was missed, so the caller looks at the queue again rather than
        sleeping through work that is already there. One wake-up is enough, so the notifications
        that piled up meanwhile are drained with it (a listener that never reads would make the
        server hold them). Callers waiting at the same time take turns; one that cannot get the
        listener within ``timeout`` returns False, and looks at the queue again as after any wait.
        """
        if not self._listen_lock.acquire(timeout=max(0.0, timeout)):
            return False
        try:
            conn = self._listener
            if conn is None or conn.closed:
                conn = psycopg.Connection.connect(self.url, autocommit=True, row_factory=dict_row,
                                                  application_name=f"{self._name}-listen")
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                self._listener = conn
                return True
            woke = any(True for _ in conn.notifies(timeout=max(0.0, timeout), stop_after=1))
            if woke:
                for _ in conn.notifies(timeout=0.0):
                    pass
            return woke
        except psycopg.Error as exc:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            raise _connection_error(self.url, exc) from exc
        finally:
            self._listen_lock.release()

    def close(self) -> None:
        """Close the pool and the listening connection (idempotent)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.pool.close()
