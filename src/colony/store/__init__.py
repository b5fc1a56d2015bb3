"""The store: one SQLite database per node, its migrations, and the functions over its tables.

SQL lives here and only here. Other packages call the functions in `sessions` and `audit`
(and, later, each capability's own store module); they never hold a cursor.
May import: `colony.errors`, `colony.llm.messages`. Must not import agent, tools, cli or server.
"""

from __future__ import annotations

from pathlib import Path

import apsw

from colony.store._db import Database, Row, _store_error
from colony.store.migrations import MIGRATIONS, Migration, latest_version, migrate, schema_version
from colony.store.sessions import interrupt_orphaned_turns

__all__ = ["MIGRATIONS", "Database", "Migration", "Row", "latest_version", "migrate", "open_database", "schema_version"]


def open_database(path: Path | str) -> Database:
    """Open (creating if needed) and migrate the node database; mark orphaned turns interrupted.

    Every SQLite failure on the way becomes a `StoreError` (exit 4 on the CLI), a damaged file's
    with the way back: the surfaces show it as a message, never a traceback.
    """
    db = Database(path)
    try:
        migrate(db)
        interrupt_orphaned_turns(db)
    except apsw.Error as exc:
        db.close()
        raise _store_error(f"Cannot open the database {db.path}: {exc}.", exc) from exc
    except BaseException:
        db.close()
        raise
    return db
