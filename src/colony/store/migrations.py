"""Numbered schema migrations, applied in order and recorded.

The schema version lives in ``PRAGMA user_version`` (read without touching any table) and each
applied migration is also a row in ``schema_migrations`` for humans. Capabilities append their
own migrations to `MIGRATIONS`; a number is never reused or edited once released.

Opening a database whose version is higher than the last migration here means a newer Colony
wrote it: we refuse (`SchemaTooNewError`) rather than run old code on a schema it cannot know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import apsw

from colony.errors import SchemaTooNewError, StoreError
from colony.store._db import Database

__all__ = ["MIGRATIONS", "Migration", "latest_version", "migrate", "schema_version"]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[apsw.Connection], None]


def _sql(script: str) -> Callable[[apsw.Connection], None]:
    def run(conn: apsw.Connection) -> None:
        conn.execute(script)

    return run


_CORE = """
CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    surface TEXT NOT NULL DEFAULT 'cli',
    agent TEXT NOT NULL DEFAULT 'colony',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE turns (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('running','completed','failed','cancelled','interrupted')),
    prompt TEXT NOT NULL,
    perception TEXT,
    final_text TEXT,
    error TEXT,
    tool_calls INTEGER NOT NULL DEFAULT 0,
    model_requests INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    finished_at TEXT
);
CREATE INDEX turns_session ON turns(session_id, started_at);
CREATE INDEX turns_status ON turns(status);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    turn_id TEXT REFERENCES turns(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('system','user','assistant','tool')),
    body TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX messages_session ON messages(session_id, id);
CREATE TABLE episodes (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    turn_id TEXT REFERENCES turns(id) ON DELETE SET NULL,
    asked TEXT NOT NULL,
    done TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('success','partial','failure','cancelled')),
    sentiment TEXT NOT NULL CHECK (sentiment IN ('positive','neutral','negative')),
    tags TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX episodes_session ON episodes(session_id, id);
CREATE TABLE tool_calls (
    id INTEGER PRIMARY KEY,
    session_id TEXT,
    turn_id TEXT,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    result_preview TEXT,
    latency_ms REAL NOT NULL,
    approval TEXT NOT NULL,
    risk TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX tool_calls_session ON tool_calls(session_id, id);
CREATE INDEX tool_calls_tool ON tool_calls(tool, id);
CREATE INDEX tool_calls_created ON tool_calls(created_at);
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    session_id TEXT,
    turn_id TEXT,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending','approved','denied','expired')),
    decided_by TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    expires_at TEXT NOT NULL,
    decided_at TEXT
);
CREATE INDEX approvals_status ON approvals(status, created_at);
CREATE TABLE llm_calls (
    id INTEGER PRIMARY KEY,
    session_id TEXT,
    turn_id TEXT,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_ms REAL NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX llm_calls_provider ON llm_calls(provider, created_at);
"""

_MEMORY = """
CREATE TABLE memories (
    id INTEGER PRIMARY KEY,
    content TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    memory_type TEXT NOT NULL CHECK (memory_type IN ('fact','event','preference','summary','procedure')),
    confidence REAL NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    verified TEXT NOT NULL CHECK (verified IN ('inferred','user_stated','system_verified')),
    sensitivity TEXT NOT NULL CHECK (sensitivity IN ('public','internal','confidential','restricted')),
    expires_at TEXT,
    source_kind TEXT NOT NULL,
    source_id TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    last_accessed_at TEXT,
    superseded_by INTEGER REFERENCES memories(id) ON DELETE SET NULL,
    supersedes INTEGER REFERENCES memories(id) ON DELETE SET NULL,
    needs_review INTEGER NOT NULL DEFAULT 0,
    embedding_model TEXT
);
CREATE INDEX memories_hash ON memories(content_hash);
CREATE INDEX memories_expires ON memories(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX memories_superseded ON memories(superseded_by) WHERE superseded_by IS NOT NULL;
CREATE INDEX memories_unembedded ON memories(id) WHERE embedding_model IS NULL;
CREATE VIRTUAL TABLE memories_fts USING fts5(
    content, content='memories', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE memories_fts_vocab USING fts5vocab(memories_fts, 'row');
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF content ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO memories_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TABLE memory_embeddings (
    memory_id INTEGER PRIMARY KEY REFERENCES memories(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE TABLE memory_triples (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    relation TEXT NOT NULL,
    object TEXT NOT NULL,
    weight REAL NOT NULL DEFAULT 1,
    UNIQUE (subject, relation, object)
);
CREATE INDEX memory_triples_object ON memory_triples(object);
CREATE TABLE memory_triple_sources (
    triple_id INTEGER NOT NULL REFERENCES memory_triples(id) ON DELETE CASCADE,
    memory_id INTEGER NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    PRIMARY KEY (triple_id, memory_id)
) WITHOUT ROWID;
CREATE INDEX memory_triple_sources_memory ON memory_triple_sources(memory_id);
CREATE TABLE memory_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

MIGRATIONS: list[Migration] = [
    Migration(1, "core: sessions, turns, messages, episodes, tool-call audit, approvals, llm calls", _sql(_CORE)),
    Migration(2, "memory: memories, FTS5 index, embeddings, triples", _sql(_MEMORY)),
]


def _ordered(migrations: list[Migration]) -> list[Migration]:
    """Migrations sorted by version; a number used twice is a programming error caught at open."""
    ordered = sorted(migrations, key=lambda m: m.version)
    seen = [m.version for m in ordered]
    if len(set(seen)) != len(seen):
        raise StoreError(f"Migration numbers are used twice: {seen}")
    return ordered


def latest_version() -> int:
    return max(m.version for m in MIGRATIONS)


def schema_version(db: Database) -> int:
    return int(db.scalar("PRAGMA user_version") or 0)


def migrate(db: Database, migrations: list[Migration] | None = None) -> int:
    """Bring the database up to date; safe when several processes open it at once.

    Returns the schema version after migrating.
    """
    migrations = _ordered(MIGRATIONS if migrations is None else migrations)
    known = migrations[-1].version if migrations else 0
    current = schema_version(db)
    if current > known:
        raise SchemaTooNewError(db.path, current, known)
    if current == known:
        return current
    with db.tx() as conn:
        # Re-read under the write lock: another process may have migrated meanwhile.
        row = conn.execute("PRAGMA user_version").fetchone()
        current = int(row["user_version"]) if row else 0
        for m in migrations:
            if m.version <= current:
                continue
            try:
                m.apply(conn)
            except apsw.Error as exc:
                raise StoreError(f"Migration {m.version} ({m.name}) failed on {db.path}: {exc}") from exc
            conn.execute(
                "INSERT OR REPLACE INTO schema_migrations(version, name) VALUES (?, ?)", (m.version, m.name)
            )
            conn.execute(f"PRAGMA user_version = {int(m.version)}")
            current = m.version
    return current
