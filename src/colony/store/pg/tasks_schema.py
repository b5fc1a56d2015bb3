"""Migration 3 on PostgreSQL, tasks: the same tables, constraints and indexes as on SQLite.

What differs, and why:

- ``seq`` (an identity column) stands in for SQLite's rowid: claims break ties by age and
  listings show the newest first, and PostgreSQL rows have no stable insertion order;
- ``skills`` is JSONB so a claim tests "the task needs only skills this worker has" with one
  containment operator (``skills <@ worker_skills``) instead of unpacking JSON;
- the credit budget is BIGINT: integer credits, end to end (SQLite's column is REAL);
- append-only history is a trigger function that raises on UPDATE, DELETE and TRUNCATE of
  ``task_events``, as SQLite's ``RAISE(ABORT, …)`` triggers do for UPDATE and DELETE.

``autonomy_workers`` is not here: worker heartbeat rows name processes by their PID on one host,
so they stay in each node's own SQLite database (``colony tasks list`` shows that node's workers).
The market's ``tasks.assignee`` is added by migration 13, as on SQLite (`colony.store.pg.market_schema`).
"""

from __future__ import annotations

__all__ = ["SQLITE_ACCESS_PATHS", "TASKS_SCHEMA"]

#: SQLite columns that are an access path, not data (`colony.store.pg.copy` leaves them behind):
#: SQLite migration 16 chains each task's events (``tasks.last_event`` → ``task_events.prev`` → …)
#: where PostgreSQL reaches the same rows by its ``task_events_task`` index.
SQLITE_ACCESS_PATHS: dict[str, frozenset[str]] = {
    "tasks": frozenset({"last_event"}),
    "task_events": frozenset({"prev"}),
}

TASKS_SCHEMA = """
CREATE TABLE tasks (
    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id TEXT PRIMARY KEY,
    goal TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('posted','bidding','assigned','executing','awaiting_approval',
                                         'retry_wait','completed','failed','cancelled')),
    prev_state TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    deadline DOUBLE PRECISION,
    skills JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(skills) = 'array'),
    budget_tokens BIGINT,
    budget_tool_calls BIGINT,
    budget_credits BIGINT,
    used_tokens BIGINT NOT NULL DEFAULT 0,
    used_tool_calls BIGINT NOT NULL DEFAULT 0,
    parent_id TEXT REFERENCES tasks(id),
    waiting_on INTEGER NOT NULL DEFAULT 0,
    resumable INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    not_before DOUBLE PRECISION NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_token TEXT,
    lease_expires DOUBLE PRECISION,
    approval TEXT NOT NULL DEFAULT 'none' CHECK (approval IN ('none','task')),
    approved INTEGER NOT NULL DEFAULT 0,
    pause_tools TEXT NOT NULL DEFAULT '[]',
    approval_default TEXT NOT NULL DEFAULT 'deny' CHECK (approval_default IN ('deny','fail')),
    approval_timeout_s DOUBLE PRECISION,
    awaiting TEXT,
    awaiting_expires DOUBLE PRECISION,
    result TEXT,
    error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX tasks_ready ON tasks(resumable DESC, priority DESC, (coalesce(deadline, 1e18)), seq)
    WHERE state IN ('posted','retry_wait') AND waiting_on = 0;
CREATE INDEX tasks_leased ON tasks(lease_expires) WHERE lease_expires IS NOT NULL;
CREATE INDEX tasks_awaiting ON tasks(awaiting_expires) WHERE awaiting_expires IS NOT NULL;
CREATE INDEX tasks_state ON tasks(state, updated_at);
CREATE INDEX tasks_parent ON tasks(parent_id) WHERE parent_id IS NOT NULL;
CREATE TABLE task_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    at DOUBLE PRECISION NOT NULL,
    data TEXT
);
CREATE INDEX task_events_task ON task_events(task_id, id);
CREATE FUNCTION task_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'task_events is append-only';
END $$;
CREATE TRIGGER task_events_no_update BEFORE UPDATE OR DELETE ON task_events
    FOR EACH ROW EXECUTE FUNCTION task_events_append_only();
CREATE TRIGGER task_events_no_truncate BEFORE TRUNCATE ON task_events
    FOR EACH STATEMENT EXECUTE FUNCTION task_events_append_only();
CREATE TABLE task_deps (
    task_id TEXT NOT NULL REFERENCES tasks(id),
    depends_on TEXT NOT NULL REFERENCES tasks(id),
    PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX task_deps_on ON task_deps(depends_on);
CREATE TABLE task_checkpoints (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    step TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('model','tool','step','summary')),
    attempt INTEGER NOT NULL,
    body BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (task_id, step)
);
CREATE TABLE task_plan_steps (
    task_id TEXT NOT NULL REFERENCES tasks(id),
    idx INTEGER NOT NULL,
    title TEXT NOT NULL,
    depends_on TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL CHECK (status IN ('pending','in_progress','done','failed')),
    result TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (task_id, idx)
);
"""
