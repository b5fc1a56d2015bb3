"""The store: one SQLite database per node, its migrations, and the functions over its tables.

SQL lives here and only here. Other packages reach the conversation records and their audit
through `records.RecordStore` (`records.open_records` picks SQLite or PostgreSQL), and each
capability through its own store module; they never hold a cursor.
May import: `colony.errors`, `colony.llm.messages`, `colony.redaction`. Must not import agent,
tools, cli or server.
"""

from __future__ import annotations

from pathlib import Path

import apsw

from colony.store._db import Database, Row, _store_error
from colony.store.migrations import MIGRATIONS, Migration, latest_version, migrate, schema_version
from colony.store.sqlite_records import SqliteRecordStore

__all__ = ["MIGRATIONS", "Database", "Migration", "Row", "latest_version", "migrate", "open_database", "schema_version"]


def open_database(path: Path | str) -> Database:
    """Open (creating if needed) and migrate the node database; mark orphaned turns interrupted.

    Every SQLite failure on the way becomes a `StoreError` (exit 4 on the CLI), a damaged file's
    with the way back: the surfaces show it as a message, never a traceback.
    """
    db = Database(path)
    try:
        migrate(db)
        SqliteRecordStore(db).interrupt_orphaned_turns()
    except apsw.Error as exc:
        db.close()
        raise _store_error(f"Cannot open the database {db.path}: {exc}.", exc) from exc
    except BaseException:
        db.close()
        raise
    return db
