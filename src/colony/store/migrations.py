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
from colony.store.agents_schema import AGENTS_SCHEMA
from colony.store.federation_schema import FEDERATION_SCHEMA
from colony.store.governance_accounts_schema import apply_governance_accounts
from colony.store.governance_schema import GOVERNANCE_SCHEMA
from colony.store.identity_schema import IDENTITY_SCHEMA
from colony.store.introduced_schema import INTRODUCED_SCHEMA
from colony.store.ledger_schema import LEDGER_SCHEMA
from colony.store.market_schema import MARKET_SCHEMA
from colony.store.partition_adopt_schema import PARTITION_ADOPT_SCHEMA
from colony.store.partition_schema import PARTITION_SCHEMA
from colony.store.payments_schema import PAYMENTS_SCHEMA
from colony.store.remote_faults_schema import REMOTE_FAULTS_SCHEMA
from colony.store.remote_market_schema import REMOTE_MARKET_SCHEMA
from colony.store.removal_reason_schema import REMOVAL_REASON_SCHEMA
from colony.store.replica_schema import REPLICA_SCHEMA
from colony.store.task_assignee_schema import TASK_ASSIGNEE_SCHEMA

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

_COGNITION_EVALS = """
CREATE TABLE cognition_state (
    module TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE cognition_predictions (
    id INTEGER PRIMARY KEY,
    session_id TEXT,
    turn_id TEXT,
    tool TEXT NOT NULL,
    expected_success REAL NOT NULL,
    expected_latency_ms REAL NOT NULL,
    uncertainty REAL NOT NULL,
    outcome TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    surprisal REAL NOT NULL,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX cognition_predictions_tool ON cognition_predictions(tool, id);
CREATE TABLE cognition_lessons (
    id INTEGER PRIMARY KEY,
    session_id TEXT,
    task_type TEXT,
    action_taken TEXT NOT NULL,
    alternative TEXT,
    lesson TEXT NOT NULL,
    keywords TEXT NOT NULL DEFAULT '',
    confidence REAL NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    times_applied INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    UNIQUE (task_type, lesson)
);
CREATE TABLE eval_cases (
    id TEXT PRIMARY KEY,
    category TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX eval_cases_category ON eval_cases(category);
CREATE TABLE eval_runs (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL,
    condition TEXT NOT NULL DEFAULT '{}',
    cases INTEGER NOT NULL,
    properties_passed INTEGER NOT NULL,
    properties_failed INTEGER NOT NULL,
    is_baseline INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE eval_results (
    run_id TEXT NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
    case_id TEXT NOT NULL,
    trial INTEGER NOT NULL DEFAULT 0,
    property TEXT NOT NULL,
    passed INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, case_id, trial, property)
) WITHOUT ROWID;
CREATE TABLE eval_ab (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    modules TEXT NOT NULL,
    trials INTEGER NOT NULL,
    report TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
"""

_TASKS = """
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    goal TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('posted','bidding','assigned','executing','awaiting_approval',
                                         'retry_wait','completed','failed','cancelled')),
    prev_state TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    deadline REAL,
    skills TEXT NOT NULL DEFAULT '[]',
    budget_tokens INTEGER,
    budget_tool_calls INTEGER,
    budget_credits REAL,
    used_tokens INTEGER NOT NULL DEFAULT 0,
    used_tool_calls INTEGER NOT NULL DEFAULT 0,
    parent_id TEXT REFERENCES tasks(id),
    waiting_on INTEGER NOT NULL DEFAULT 0,
    resumable INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    not_before REAL NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_token TEXT,
    lease_expires REAL,
    approval TEXT NOT NULL DEFAULT 'none' CHECK (approval IN ('none','task')),
    approved INTEGER NOT NULL DEFAULT 0,
    pause_tools TEXT NOT NULL DEFAULT '[]',
    approval_default TEXT NOT NULL DEFAULT 'deny' CHECK (approval_default IN ('deny','fail')),
    approval_timeout_s REAL,
    awaiting TEXT,
    awaiting_expires REAL,
    result TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX tasks_ready ON tasks(resumable DESC, priority DESC, coalesce(deadline, 1e18))
    WHERE state IN ('posted','retry_wait') AND waiting_on = 0;
CREATE INDEX tasks_leased ON tasks(lease_expires) WHERE lease_expires IS NOT NULL;
CREATE INDEX tasks_awaiting ON tasks(awaiting_expires) WHERE awaiting_expires IS NOT NULL;
CREATE INDEX tasks_state ON tasks(state, updated_at);
CREATE INDEX tasks_parent ON tasks(parent_id) WHERE parent_id IS NOT NULL;
CREATE TABLE task_events (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,
    data TEXT
);
CREATE INDEX task_events_task ON task_events(task_id, id);
CREATE TRIGGER task_events_no_update BEFORE UPDATE ON task_events BEGIN
    SELECT RAISE(ABORT, 'task_events is append-only');
END;
CREATE TRIGGER task_events_no_delete BEFORE DELETE ON task_events BEGIN
    SELECT RAISE(ABORT, 'task_events is append-only');
END;
CREATE TABLE task_deps (
    task_id TEXT NOT NULL REFERENCES tasks(id),
    depends_on TEXT NOT NULL REFERENCES tasks(id),
    PRIMARY KEY (task_id, depends_on)
) WITHOUT ROWID;
CREATE INDEX task_deps_on ON task_deps(depends_on);
CREATE TABLE task_checkpoints (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    step TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('model','tool','step','summary')),
    attempt INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (task_id, step)
);
CREATE TABLE task_plan_steps (
    task_id TEXT NOT NULL REFERENCES tasks(id),
    idx INTEGER NOT NULL,
    title TEXT NOT NULL,
    depends_on TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL CHECK (status IN ('pending','in_progress','done','failed')),
    result TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE TABLE autonomy_workers (
    worker TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running','stopping','stopped')),
    started_at REAL NOT NULL,
    beat_at REAL NOT NULL,
    tasks_done INTEGER NOT NULL DEFAULT 0,
    last_task TEXT,
    last_error TEXT,
    curated_at REAL
);
"""

_PROTOCOLS = """
CREATE TABLE acp_sessions (
    id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    cwd TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'ask',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE mcp_tool_pins (
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    hash TEXT NOT NULL,
    definition TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('approved','changed')),
    pending_hash TEXT,
    pending_definition TEXT,
    first_seen_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (server, tool)
);
CREATE TABLE mcp_pin_events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('pinned','changed','approved')),
    old_hash TEXT,
    new_hash TEXT NOT NULL,
    actor TEXT NOT NULL
);
CREATE INDEX mcp_pin_events_tool ON mcp_pin_events(server, tool, id);
"""

_CARTRIDGES_BENCH = """
CREATE TABLE cartridges (
    slug TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('backend','cognitive')),
    lang TEXT NOT NULL CHECK (lang IN ('wat','wasm','python')),
    interface TEXT,
    description TEXT NOT NULL DEFAULT '',
    active_version INTEGER,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE cartridge_versions (
    slug TEXT NOT NULL REFERENCES cartridges(slug) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    source BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active','retired','rolled_back')),
    calls INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    fitness REAL,
    note TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (slug, version)
) WITHOUT ROWID;
CREATE TABLE cartridge_kv (
    slug TEXT NOT NULL REFERENCES cartridges(slug) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (slug, key)
) WITHOUT ROWID;
CREATE TABLE cartridge_logs (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL REFERENCES cartridges(slug) ON DELETE CASCADE,
    version INTEGER,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX cartridge_logs_slug ON cartridge_logs(slug, id);
CREATE TABLE bench_runs (
    id TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    model TEXT NOT NULL,
    shard TEXT NOT NULL DEFAULT '1/1',
    change_ref TEXT,
    problems INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    score REAL NOT NULL,
    ci_low REAL NOT NULL,
    ci_high REAL NOT NULL,
    per_tier TEXT NOT NULL DEFAULT '{}',
    tokens INTEGER NOT NULL DEFAULT 0,
    wall_s REAL NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE bench_results (
    run_id TEXT NOT NULL REFERENCES bench_runs(id) ON DELETE CASCADE,
    problem_id TEXT NOT NULL,
    tier INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    stop TEXT NOT NULL,
    tokens INTEGER NOT NULL DEFAULT 0,
    wall_ms REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, problem_id)
) WITHOUT ROWID;
CREATE INDEX bench_results_problem ON bench_results(problem_id);
CREATE TABLE bench_changes (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('cartridge','prompt','policy')),
    ref TEXT NOT NULL,
    measured_run TEXT REFERENCES bench_runs(id) ON DELETE SET NULL,
    delta REAL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
"""

_WEB_SESSIONS = """
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_expiry ON web_sessions(expires_at);
"""

#: ACP's rows lose their foreign key to ``sessions``: on a node whose records live on PostgreSQL
#: (`colony.store.records`) the session is there, while the editor's folder and mode stay in this
#: file (they name a path on this machine). Rebuilt in rowid order, so the listing's ties keep theirs.
_ACP_UNLINKED = """
CREATE TABLE acp_sessions_unlinked (
    id TEXT PRIMARY KEY,
    cwd TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'ask',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
INSERT INTO acp_sessions_unlinked(id, cwd, mode, created_at, updated_at)
    SELECT id, cwd, mode, created_at, updated_at FROM acp_sessions ORDER BY rowid;
DROP TABLE acp_sessions;
ALTER TABLE acp_sessions_unlinked RENAME TO acp_sessions;
"""

_MEMORY_MENTIONS = """
CREATE TABLE memory_entities (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    df INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE memory_mentions (
    entity_id INTEGER NOT NULL REFERENCES memory_entities(id),
    memory_id INTEGER NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    PRIMARY KEY (entity_id, memory_id)
) WITHOUT ROWID;
CREATE INDEX memory_mentions_memory ON memory_mentions(memory_id, entity_id);
CREATE TABLE memory_cues (
    memory_id INTEGER NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    relation TEXT NOT NULL,
    PRIMARY KEY (memory_id, relation)
) WITHOUT ROWID;
CREATE TRIGGER memory_mentions_delete AFTER DELETE ON memory_mentions BEGIN
    UPDATE memory_entities SET df = df - 1 WHERE id = old.entity_id;
    DELETE FROM memory_entities WHERE id = old.entity_id AND df <= 0;
END;
"""


def _memory_mentions(conn: apsw.Connection) -> None:
    """The entity–memory mention graph (multi-hop recall links memories that name the same thing)
    and each memory's relation cues (which relations its words speak of), backfilled from the
    memories already stored.

    ``df`` counts the memories that mention an entity: it is raised by the writer and lowered
    by the trigger, which also runs for the mentions a deleted memory cascades away.
    """
    from colony.memory._paths import mention_keys  # the extractor lives with memory
    from colony.store.memory import link_mentions

    conn.execute(_MEMORY_MENTIONS)
    for row in list(conn.execute("SELECT id, content FROM memories ORDER BY id")):
        mentions = mention_keys(str(row["content"]))
        link_mentions(conn, int(row["id"]), mentions.entities, mentions.relations)


_TASK_PAGES = """
ALTER TABLE tasks ADD COLUMN last_event INTEGER;
ALTER TABLE task_events ADD COLUMN prev INTEGER;
UPDATE tasks SET last_event = (SELECT max(id) FROM task_events WHERE task_events.task_id = tasks.id);
DROP TRIGGER task_events_no_update;
UPDATE task_events SET prev = chained.prev
    FROM (SELECT id, lag(id) OVER (PARTITION BY task_id ORDER BY id) AS prev FROM task_events) AS chained
    WHERE chained.id = task_events.id AND chained.prev IS NOT NULL;
CREATE TRIGGER task_events_no_update BEFORE UPDATE ON task_events BEGIN
    SELECT RAISE(ABORT, 'task_events is append-only');
END;
DROP INDEX task_events_task;
DROP INDEX tasks_state;
CREATE INDEX tasks_state ON tasks(state, updated_at) WHERE state NOT IN ('posted','executing','completed');
"""
"""Migration 16: fewer pages written per task transition (`colony.tasks.store` explains the costs).

- A task's history is a chain: ``tasks.last_event`` is the id of its newest event and each event's
  ``prev`` the one before (NULL for "posted"). Reading a history walks it (a handful of rowid
  lookups); writing an event touches only the last page of ``task_events``. The index on
  ``task_events(task_id, id)`` it replaces cost a page per commit (task ids are random, so the
  leaf was anywhere) and is dropped. Existing rows are chained here: ``prev`` by ``lag(id)`` over
  each task's events in id order, ``last_event`` by the largest id. Filling ``prev`` is an update,
  which the append-only trigger refuses, so the trigger is dropped and re-created around it in
  this same transaction; no event's content changes.
- ``tasks_state`` keeps only the states off the claim path (bidding, assigned, awaiting approval,
  retry wait, failed, cancelled): the full index was rewritten by every claim and completion.
"""

MIGRATIONS: list[Migration] = [
    Migration(1, "core: sessions, turns, messages, episodes, tool-call audit, approvals, llm calls", _sql(_CORE)),
    Migration(2, "memory: memories, FTS5 index, embeddings, triples", _sql(_MEMORY)),
    Migration(3, "tasks: durable tasks, append-only events, dependencies, checkpoints, plans, workers", _sql(_TASKS)),
    Migration(4, "cognition state, prediction log, lessons; eval cases, runs, results, A/B reports", _sql(_COGNITION_EVALS)),
    Migration(5, "protocols: persisted ACP sessions, pinned MCP tool definitions and their audit", _sql(_PROTOCOLS)),
    Migration(6, "cartridges: versions, per-cartridge KV, logs; coding benchmark runs, results, changes", _sql(_CARTRIDGES_BENCH)),
    Migration(7, "web: server-side login sessions (keyed ids, expiry) that logging out deletes", _sql(_WEB_SESSIONS)),
    Migration(8, "identity: node and agent keys (encrypted keyfiles), NIP-98 replay cache, peer cards", _sql(IDENTITY_SCHEMA)),
    Migration(9, "ledger: signed per-account chains, nonce claims, escrow holds, treasury audit, state tree", _sql(LEDGER_SCHEMA)),
    Migration(10, "payments: x402 nonce claims (never released) and the journal of payments made and received",
              _sql(PAYMENTS_SCHEMA)),
    Migration(11, "memory: entities, the memories that mention them, relation cues (multi-hop recall)",
              _memory_mentions),
    Migration(12, "agents: each hosted agent's persona, model tier and cost model (kept when deactivated)",
              _sql(AGENTS_SCHEMA)),
    Migration(13, "market: auctions, their signed events, sealed bids, verification results, feedback; "
              "tasks.assignee", _sql(MARKET_SCHEMA)),
    Migration(14, "governance: stake holds and slashes, proposals, votes, vetoes, executions, tool tiers, params",
              _sql(GOVERNANCE_SCHEMA)),
    Migration(15, "acp: editor sessions without a foreign key to sessions (which may live on PostgreSQL)",
              _sql(_ACP_UNLINKED)),
    Migration(16, "tasks: history as a chain of events (no task_events index), state index off the claim path",
              _sql(_TASK_PAGES)),
    Migration(17, "federation: trusted nodes, invites, per-peer outbox and inbox, incidents, the queen view",
              _sql(FEDERATION_SCHEMA)),
    Migration(18, "federation: verified replicas of peers' ledgers and reputation events, equivocation proofs",
              _sql(REPLICA_SCHEMA)),
    Migration(19, "governance: stake locks, stake keys and tool tiers keyed by account",
              apply_governance_accounts),
    Migration(20, "tasks: the assignee is the winning agent's account, not its node-local name",
              _sql(TASK_ASSIGNEE_SCHEMA)),
    Migration(21, "federation: remote auctions, this node's bids in them, remote bidders and notices sent",
              _sql(REMOTE_MARKET_SCHEMA)),
    Migration(22, "federation: result deadlines, given-up awards, stale results, lapsed bids", _sql(REMOTE_FAULTS_SCHEMA)),
    Migration(23, "bench: partitioned runs across the colony, assignments, results, refusals, each node's share",
              _sql(PARTITION_SCHEMA)),
    Migration(24, "federation: why a member was removed (a convicted equivocator)", _sql(REMOVAL_REASON_SCHEMA)),
    Migration(25, "bench: a partitioned run's coordinator term (adoption), each node's verdicts kept whole",
              _sql(PARTITION_ADOPT_SCHEMA)),
    Migration(26, "federation: members introduced by another member, and by whom", _sql(INTRODUCED_SCHEMA)),
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
