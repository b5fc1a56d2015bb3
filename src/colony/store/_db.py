"""The node's SQLite database: one file, WAL mode, opened through `apsw`.

Why apsw: this Python's stdlib `sqlite3` cannot load extensions, and the memory layer loads
`sqlite-vec`. apsw exposes the full SQLite API and releases the GIL while SQLite works.

Concurrency model: one connection per thread (SQLite connections are cheap and this avoids
sharing cursors across threads), WAL so readers never block the writer, a busy timeout so
writers from other threads and processes wait instead of failing, and ``BEGIN IMMEDIATE`` for
every write transaction so two writers never deadlock upgrading a read lock.

On disk: the database's folder is the node's data directory. Before the first connection the
folder is created owner-only (or the error says how to fix COLONY_HOME), the file is created 0600
— SQLite gives its ``-wal`` and ``-shm`` files the database's mode — and looser modes left by an
older Colony are tightened. An empty file next to an earlier node's traces is reported loudly
(`colony.store.home`). Each `Database` holds a shared lock on ``colony.db.lock`` while open, so
`colony restore` can tell that a node is running (`colony.store._lock`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import apsw

from colony.errors import StoreError
from colony.store._lock import DatabaseLock
from colony.store.home import FILE_MODE, SIDE_FILES, prepare_home, tighten, warn_if_empty

__all__ = ["Database", "Row"]

Row = dict[str, Any]
Params = Sequence[Any] | dict[str, Any]

BUSY_TIMEOUT_MS = 10_000


def _load_vector_extension(conn: apsw.Connection) -> str | None:
    """Load sqlite-vec into a connection; return why it could not be loaded, or None."""
    try:
        import sqlite_vec
    except ImportError:
        return "the sqlite-vec package is not installed (pip install sqlite-vec)"
    try:
        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec.loadable_path())
    except apsw.Error as exc:
        return f"sqlite-vec could not be loaded: {exc}"
    finally:
        conn.enable_load_extension(False)
    return None


def _store_error(message: str, exc: BaseException) -> StoreError:
    """A `StoreError` for an SQLite failure; a damaged file says how to get the data back."""
    if isinstance(exc, apsw.CorruptError | apsw.NotADBError):
        message += (" The database file is damaged or is not a Colony database: restore the last backup with "
                    "`colony restore PATH` (the damaged file is kept aside); `colony doctor` checks it.")
    return StoreError(message)


def _row_factory(cursor: apsw.Cursor, row: tuple[Any, ...]) -> Row:
    return {d[0]: v for d, v in zip(cursor.get_description(), row, strict=True)}


class Database:
    """A path plus per-thread connections. Use `tx()` to write and `query()`/`one()` to read."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._all: list[apsw.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._file_lock: DatabaseLock | None = None
        #: Traces of an earlier node found beside an empty database file when it was opened
        #: (see `colony.store.home.empty_database_traces`); [] for a normal open.
        self.found_empty: list[str] = []
        #: None when sqlite-vec is loaded in every connection; otherwise why it is not.
        self.vector_error: str | None = None

    @property
    def closed(self) -> bool:
        """Whether `close` was called (a background helper holding this object stops then)."""
        return self._closed

    # -- connections --------------------------------------------------------------------------
    def connection(self) -> apsw.Connection:
        """This thread's connection, opened with the node's pragmas on first use."""
        conn: apsw.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreError(f"The database {self.path} is closed.")
        if self.path != ":memory:":
            with self._lock:
                if self._file_lock is None:
                    self._prepare_file()
        try:
            conn = apsw.Connection(self.path)
            conn.set_busy_timeout(BUSY_TIMEOUT_MS)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA temp_store=MEMORY")
            self.vector_error = _load_vector_extension(conn)
        except (apsw.Error, OSError) as exc:
            if isinstance(exc, apsw.CorruptError | apsw.NotADBError):
                raise _store_error(f"Cannot open the database {self.path}: {exc}.", exc) from exc
            raise StoreError(
                f"Cannot open the database {self.path}: {exc}. Check that COLONY_HOME is writable "
                "and the file is a Colony database (colony doctor explains more)."
            ) from exc
        conn.set_row_trace(_row_factory)
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def _prepare_file(self) -> None:
        """Once per object: the folder and file owner-only, the shared lock, the empty-file check."""
        path = Path(self.path)
        prepare_home(path.parent)
        lock = DatabaseLock(path)
        lock.acquire_shared(BUSY_TIMEOUT_MS / 1000)
        try:
            self.found_empty = warn_if_empty(path)
            try:  # created 0600 before SQLite opens it; SQLite then gives -wal and -shm the same mode
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
            except OSError as exc:
                raise StoreError(
                    f"Cannot open the database {self.path}: {exc.strerror or exc}. Check that COLONY_HOME "
                    "is writable by this user (colony doctor explains more)."
                ) from exc
            for suffix in ("", *SIDE_FILES):
                tighten(Path(self.path + suffix), what="database file")
        except BaseException:
            lock.release()
            raise
        self._file_lock = lock

    def close(self) -> None:
        """Close every connection this object opened (from any thread), then release the lock."""
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
            lock, self._file_lock = self._file_lock, None
        for conn in conns:
            try:
                conn.close(force=True)
            except apsw.Error:
                continue
        self._local = threading.local()
        if lock is not None:
            lock.release()

    # -- reads and writes ---------------------------------------------------------------------
    def query(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            return list(self.connection().execute(sql, params))
        except apsw.Error as exc:
            raise _store_error(f"Query failed on {self.path}: {exc}.", exc) from exc

    def tuples(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Rows as plain tuples: for hot paths that read thousands of rows (no dict per row)."""
        try:
            cursor = self.connection().cursor()
            cursor.set_row_trace(None)
            return list(cursor.execute(sql, params))
        except apsw.Error as exc:
            raise _store_error(f"Query failed on {self.path}: {exc}.", exc) from exc

    def one(self, sql: str, params: Params = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Params = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    @contextmanager
    def tx(self) -> Iterator[apsw.Connection]:
        """A write transaction (BEGIN IMMEDIATE … COMMIT, rolled back on any exception).

        Nested use on the same thread joins the outer transaction.
        """
        conn = self.connection()
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield conn
            finally:
                self._local.depth = depth
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            raise StoreError(f"Cannot start a write on {self.path}: {exc}") from exc
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            self._local.depth = 0
            if not conn.in_transaction:
                raise
            conn.execute("ROLLBACK")
            raise
        self._local.depth = 0
        try:
            conn.execute("COMMIT")
        except apsw.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"Commit failed on {self.path}: {exc}") from exc

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement in its own transaction; return the last inserted rowid."""
        with self.tx() as conn:
            try:
                conn.execute(sql, params)
            except apsw.Error as exc:
                raise _store_error(f"Write failed on {self.path}: {exc}.", exc) from exc
            return int(conn.last_insert_rowid())
