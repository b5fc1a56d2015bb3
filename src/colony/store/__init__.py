"""The store: one SQLite database per node, its migrations, and the functions over its tables.

SQL lives here and only here. Other packages call the functions in `sessions` and `audit`
(and, later, each capability's own store module); they never hold a cursor.
May import: `colony.errors`, `colony.llm.messages`. Must not import agent, tools, cli or server.
"""

from __future__ import annotations

from pathlib import Path

from colony.store._db import Database, Row
from colony.store.migrations import MIGRATIONS, Migration, latest_version, migrate, schema_version
from colony.store.sessions import interrupt_orphaned_turns

__all__ = ["MIGRATIONS", "Database", "Migration", "Row", "latest_version", "migrate", "open_database", "schema_version"]


def open_database(path: Path | str) -> Database:
    """Open (creating if needed) and migrate the node database; mark orphaned turns interrupted."""
    db = Database(path)
    try:
        migrate(db)
        interrupt_orphaned_turns(db)
    except BaseException:
        db.close()
        raise
    return db
