"""PostgreSQL migrations: the same numbers as SQLite's, applied in order and recorded.

Migration N on PostgreSQL makes the same change as migration N on SQLite
(`colony.store.migrations`), written in PostgreSQL's dialect. Capabilities move to PostgreSQL
one at a time, so this list holds the numbers ported so far (3, the tasks, today) and a
number is applied when it is missing, not only when it is above the highest: a database that
has 3 gets 2 (memory) when that port lands. A number is never reused or edited once released.

Why an advisory lock: several nodes may start at once against one server; the first to take
``pg_advisory_xact_lock`` migrates inside its transaction (PostgreSQL's DDL is transactional),
the others wait, then find every number recorded and do nothing.

A database that records a number this Colony does not know was written by a newer Colony:
`SchemaTooNewError`, as on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass

from colony.errors import SchemaTooNewError, StoreError
from colony.store.pg._db import PgDatabase
from colony.store.pg.core_schema import CORE_SCHEMA
from colony.store.pg.governance_accounts_schema import GOVERNANCE_ACCOUNTS_SCHEMA
from colony.store.pg.governance_schema import GOVERNANCE_SCHEMA
from colony.store.pg.ledger_schema import LEDGER_SCHEMA
from colony.store.pg.market_schema import MARKET_SCHEMA
from colony.store.pg.memory_mentions_schema import MEMORY_MENTIONS_SCHEMA
from colony.store.pg.memory_schema import MEMORY_SCHEMA
from colony.store.pg.payments_schema import PAYMENTS_SCHEMA
from colony.store.pg.task_assignee_schema import TASK_ASSIGNEE_SCHEMA
from colony.store.pg.tasks_schema import TASKS_SCHEMA

__all__ = ["PG_MIGRATIONS", "PgMigration", "applied_versions", "latest_pg_version", "migrate_pg"]

#: Any constant the other users of the server will not pick: "colony" in ASCII.
_LOCK_KEY = 0x636F6C6F6E79


@dataclass(frozen=True)
class PgMigration:
    version: int
    name: str
    sql: str


PG_MIGRATIONS: list[PgMigration] = [
    PgMigration(2, "memory: memories, tsvector index and BM25 statistics, embeddings, triples", MEMORY_SCHEMA),
    PgMigration(3, "tasks: durable tasks, append-only events, dependencies, checkpoints, plans", TASKS_SCHEMA),
    PgMigration(11, "memory: entities, the memories that mention them, relation cues", MEMORY_MENTIONS_SCHEMA),
    PgMigration(1, "core: sessions, turns, messages, episodes, tool-call audit, approvals, llm calls", CORE_SCHEMA),
    PgMigration(9, "ledger: signed per-account chains, nonce claims, escrow holds, treasury audit, state tree",
                LEDGER_SCHEMA),
    PgMigration(10, "payments: x402 nonce claims (never released) and the journal of payments made and received",
                PAYMENTS_SCHEMA),
    PgMigration(13, "market: auctions, signed events, sealed bids, verdicts, feedback; tasks.assignee", MARKET_SCHEMA),
    PgMigration(14, "governance: stake holds, events, locks; proposals, votes, vetoes, executions", GOVERNANCE_SCHEMA),
    PgMigration(19, "governance: stake locks, stake keys and tool tiers keyed by account", GOVERNANCE_ACCOUNTS_SCHEMA),
    PgMigration(20, "tasks: the assignee is the winning agent's account, not its node-local name",
                TASK_ASSIGNEE_SCHEMA),
]

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


def latest_pg_version() -> int:
    return max(m.version for m in PG_MIGRATIONS)


def applied_versions(db: PgDatabase) -> list[int]:
    """The migration numbers recorded in the database, ascending ([] for a new database)."""
    exists = db.scalar("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    return [int(r["version"]) for r in db.query("SELECT version FROM schema_migrations ORDER BY version")]


def migrate_pg(db: PgDatabase, migrations: list[PgMigration] | None = None) -> int:
    """Apply the missing migrations; safe when several nodes start at once. Returns the highest applied."""
    todo = sorted(PG_MIGRATIONS if migrations is None else migrations, key=lambda m: m.version)
    numbers = [m.version for m in todo]
    if len(set(numbers)) != len(numbers):
        raise StoreError(f"PostgreSQL migration numbers are used twice: {numbers}")
    known = max(numbers, default=0)
    with db.tx() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(_BOOKKEEPING)
        applied = {int(r["version"]) for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        newer = [v for v in applied if v > known]
        if newer:
            raise SchemaTooNewError(db.where, max(newer), known)
        for m in todo:
            if m.version in applied:
                continue
            conn.execute(m.sql.encode())  # bytes: the DDL is one multi-statement script, not a template
            conn.execute("INSERT INTO schema_migrations(version, name) VALUES (%s, %s)", (m.version, m.name))
            applied.add(m.version)
    return max(applied, default=0)
