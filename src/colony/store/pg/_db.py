"""A node's PostgreSQL database: a psycopg 3 connection pool, transactions, and LISTEN.

Why a pool: many workers of one node (threads, the server's requests) share a bounded number of
server connections, and a connection broken by a server restart is replaced instead of failing
every later call. Connections run in autocommit; `tx()` opens an explicit transaction, so a
read never holds a snapshot (or locks) longer than its statement.

Why one separate listening connection: ``LISTEN`` is a property of a session, and a session
waiting for notifications cannot serve queries. The database keeps one long-lived connection
outside the pool for it; notifications that arrive while nobody waits stay in its socket and
are read by the next wait, so none is lost between two waits.

Errors: psycopg's errors become `StoreError` at this boundary (the message names the server
without its password and says what to check); Colony's own errors raised inside a transaction
roll it back and pass through unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from colony.errors import StoreError

__all__ = ["PgConnection", "PgDatabase", "describe_url"]

PgConnection = Connection[DictRow]
Params = Sequence[Any] | dict[str, Any]

#: How long opening the pool waits for its first connection before telling the user.
CONNECT_TIMEOUT_S = 10.0


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
    @contextmanager
    def tx(self) -> Iterator[PgConnection]:
        """One transaction on a pooled connection: committed on success, rolled back on any error."""
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.OperationalError as exc:
            raise _connection_error(self.url, exc) from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL at {self.where} refused a statement: {str(exc).strip()}") from exc

    @contextmanager
    def _statement(self) -> Iterator[PgConnection]:
        """A pooled connection for one statement, which autocommit runs as its own transaction.

        A single statement (data-modifying CTEs included) is atomic on its own, and skipping
        BEGIN/COMMIT saves two round trips: the queue's hot path (claim, complete) is one each.
        """
        try:
            with self.pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise _connection_error(self.url, exc) from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL at {self.where} refused a statement: {str(exc).strip()}") from exc

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
