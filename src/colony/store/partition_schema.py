"""Migration 23, the partitioned coding benchmark: colony runs, who was given which problem, the
results the coordinating node took, the reports it refused, and each node's own share of the work.

The tables are node-local (each node keeps its own view of the runs it asked for, coordinated or
worked on), so they live in the node's SQLite file, beside federation's (migration 17). The merged
score itself is stored as a normal benchmark run (``bench_runs`` with shard ``colony``); these rows
are how it was made.

Invariants the database holds, not the caller:

- a run's terms (coordinator, requester, suite, mode, limit, timeout) never change and its state
  only moves forward: ``requested → running → merged`` (a requester's copy may go straight to
  ``merged``); a merged run names the ``bench_runs`` row it was stored as;
- a problem is given to a node at most once per run, and the attempts of one problem are numbered
  1, 2, … without repeats;
- a problem has at most one result per run (the first report wins; later ones are ignored), a
  result never changes, and it comes from a node the problem was given to (a trigger refuses any
  other);
- a node's share of a run (``partition_work``) holds each problem once and moves
  ``pending → done | cancelled`` only.
"""

from __future__ import annotations

__all__ = ["PARTITION_SCHEMA"]

_HEX64 = "length({col}) = 64 AND {col} NOT GLOB '*[^0-9a-f]*'"
_RUN_ID = "length({col}) = 32 AND {col} NOT GLOB '*[^0-9a-f]*'"

PARTITION_SCHEMA = f"""
CREATE TABLE partition_runs (
    id TEXT PRIMARY KEY CHECK ({_RUN_ID.format(col="id")}),
    queen TEXT NOT NULL CHECK ({_HEX64.format(col="queen")}),
    requester TEXT NOT NULL CHECK ({_HEX64.format(col="requester")}),
    suite TEXT NOT NULL CHECK (suite IN ('colony', 'humaneval', 'all')),
    mode TEXT NOT NULL CHECK (mode IN ('agent', 'canonical')),
    problem_limit INTEGER CHECK (problem_limit IS NULL OR problem_limit >= 1),
    problem_timeout_s REAL NOT NULL CHECK (problem_timeout_s > 0),
    state TEXT NOT NULL DEFAULT 'requested' CHECK (state IN ('requested', 'running', 'merged')),
    problems INTEGER CHECK (problems IS NULL OR problems >= 0),
    bench_run TEXT,
    summary TEXT CHECK (summary IS NULL OR json_valid(summary)),
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    CHECK ((state = 'merged') = (bench_run IS NOT NULL))
) STRICT;
CREATE INDEX partition_runs_open ON partition_runs(state, created_at);

CREATE TRIGGER partition_runs_move BEFORE UPDATE ON partition_runs
WHEN NEW.id IS NOT OLD.id OR NEW.queen IS NOT OLD.queen OR NEW.requester IS NOT OLD.requester
     OR NEW.suite IS NOT OLD.suite OR NEW.mode IS NOT OLD.mode OR NEW.problem_limit IS NOT OLD.problem_limit
     OR NEW.problem_timeout_s IS NOT OLD.problem_timeout_s
     OR (OLD.state = 'merged' AND (NEW.state IS NOT OLD.state OR NEW.bench_run IS NOT OLD.bench_run))
     OR (OLD.state = 'running' AND NEW.state = 'requested')
BEGIN
    SELECT RAISE(ABORT, 'partition: a run''s terms never change; it moves requested -> running -> merged');
END;

CREATE TABLE partition_assignments (
    run TEXT NOT NULL REFERENCES partition_runs(id),
    problem_id TEXT NOT NULL,
    node TEXT NOT NULL CHECK ({_HEX64.format(col="node")}),
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    assigned_at REAL NOT NULL,
    PRIMARY KEY (run, problem_id, node),
    UNIQUE (run, problem_id, attempt)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER partition_assignments_fixed BEFORE UPDATE ON partition_assignments
BEGIN
    SELECT RAISE(ABORT, 'partition: an assignment never changes');
END;

CREATE TABLE partition_results (
    run TEXT NOT NULL REFERENCES partition_runs(id),
    problem_id TEXT NOT NULL,
    node TEXT NOT NULL CHECK ({_HEX64.format(col="node")}),
    tier INTEGER NOT NULL CHECK (tier BETWEEN 1 AND 5),
    outcome TEXT NOT NULL CHECK (outcome IN ('pass', 'fail', 'tamper', 'error')),
    detail TEXT NOT NULL DEFAULT '',
    tokens INTEGER NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    wall_ms REAL NOT NULL DEFAULT 0 CHECK (wall_ms >= 0),
    solution_sha256 TEXT CHECK (solution_sha256 IS NULL OR ({_HEX64.format(col="solution_sha256")})),
    received_at REAL NOT NULL,
    PRIMARY KEY (run, problem_id)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER partition_results_assigned BEFORE INSERT ON partition_results
WHEN NOT EXISTS (SELECT 1 FROM partition_assignments a
                 WHERE a.run = NEW.run AND a.problem_id = NEW.problem_id AND a.node = NEW.node)
BEGIN
    SELECT RAISE(ABORT, 'partition: a result must come from a node the problem was given to');
END;

CREATE TRIGGER partition_results_fixed BEFORE UPDATE ON partition_results
BEGIN
    SELECT RAISE(ABORT, 'partition: a result never changes');
END;

CREATE TABLE partition_refusals (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    node TEXT NOT NULL,
    problem_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
) STRICT;
CREATE INDEX partition_refusals_run ON partition_refusals(run);

CREATE TABLE partition_work (
    run TEXT NOT NULL CHECK ({_RUN_ID.format(col="run")}),
    problem_id TEXT NOT NULL,
    queen TEXT NOT NULL CHECK ({_HEX64.format(col="queen")}),
    suite TEXT NOT NULL CHECK (suite IN ('colony', 'humaneval', 'all')),
    mode TEXT NOT NULL CHECK (mode IN ('agent', 'canonical')),
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'cancelled')),
    outcome TEXT CHECK (outcome IS NULL OR outcome IN ('pass', 'fail', 'tamper', 'error')),
    received_at REAL NOT NULL,
    done_at REAL,
    PRIMARY KEY (run, problem_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX partition_work_pending ON partition_work(state, received_at);

CREATE TRIGGER partition_work_move BEFORE UPDATE ON partition_work
WHEN NEW.run IS NOT OLD.run OR NEW.problem_id IS NOT OLD.problem_id OR NEW.queen IS NOT OLD.queen
     OR (NEW.state IS NOT OLD.state AND OLD.state != 'pending')
BEGIN
    SELECT RAISE(ABORT, 'partition: work moves pending -> done | cancelled once');
END;
"""
