"""SQL over the partitioned benchmark's tables (migration 23, `colony.store.partition_schema`); nothing else here.

Functions take the node's `Database`; called inside a caller's ``db.tx()`` they join it, so an
assignment and the message that announces it commit together. Rows come back as plain dicts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from colony.store import Database, Row

__all__ = [
    "add_assignment",
    "add_refusal",
    "add_result",
    "add_work",
    "assignments",
    "cancel_work",
    "ever_assigned",
    "finish_work",
    "get_run",
    "insert_run",
    "list_runs",
    "next_work",
    "open_runs",
    "refusals",
    "results",
    "set_merged",
    "set_running",
    "work_rows",
]

_RUN = ("id, queen, requester, suite, mode, problem_limit, problem_timeout_s, state, problems, bench_run, summary, "
        "created_at, started_at, finished_at")


def _run(row: Row) -> Row:
    row["summary"] = json.loads(row["summary"]) if row["summary"] else None
    return row


# -- runs -----------------------------------------------------------------------------------------
def insert_run(db: Database, values: dict[str, Any]) -> bool:
    """Keep a run; False when one with that id is kept already (a request delivered again)."""
    with db.tx() as conn:
        if db.one("SELECT 1 AS x FROM partition_runs WHERE id = ?", (values["id"],)):
            return False
        conn.execute(
            "INSERT INTO partition_runs(id, queen, requester, suite, mode, problem_limit, problem_timeout_s, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (values["id"], values["queen"], values["requester"], values["suite"], values["mode"],
             values["problem_limit"], values["problem_timeout_s"], values["created_at"]))
        return True


def get_run(db: Database, run: str) -> Row | None:
    row = db.one(f"SELECT {_RUN} FROM partition_runs WHERE id = ?", (run,))
    return _run(row) if row is not None else None


def list_runs(db: Database, limit: int = 20) -> list[Row]:
    return [_run(r) for r in db.query(f"SELECT {_RUN} FROM partition_runs ORDER BY created_at DESC LIMIT ?",
                                      (limit,))]


def open_runs(db: Database) -> list[Row]:
    """Runs not merged yet (asked of another node, or coordinated here), oldest first."""
    return [_run(r) for r in db.query(
        f"SELECT {_RUN} FROM partition_runs WHERE state != 'merged' ORDER BY created_at")]


def set_running(db: Database, run: str, problems: int, now: float) -> bool:
    with db.tx() as conn:
        conn.execute("UPDATE partition_runs SET state = 'running', problems = ?, started_at = ? "
                     "WHERE id = ? AND state = 'requested'", (problems, now, run))
        return bool(conn.changes())


def set_merged(db: Database, run: str, bench_run: str, summary: dict[str, Any], problems: int, now: float) -> bool:
    """Mark the run merged as ``bench_run``; False when it was merged already."""
    with db.tx() as conn:
        conn.execute("UPDATE partition_runs SET state = 'merged', bench_run = ?, summary = ?, problems = ?, "
                     "finished_at = ? WHERE id = ? AND state != 'merged'",
                     (bench_run, json.dumps(summary, sort_keys=True), problems, now, run))
        return bool(conn.changes())


# -- the coordinator's side: assignments, results, refusals ---------------------------------------
def add_assignment(db: Database, run: str, problem_id: str, node: str, now: float) -> int:
    """Give ``problem_id`` to ``node``; returns the attempt number (1 for the first holder)."""
    with db.tx() as conn:
        attempt = int(db.scalar("SELECT COALESCE(MAX(attempt), 0) FROM partition_assignments WHERE run = ? AND "
                                "problem_id = ?", (run, problem_id))) + 1
        conn.execute("INSERT INTO partition_assignments(run, problem_id, node, attempt, assigned_at) "
                     "VALUES (?, ?, ?, ?, ?)", (run, problem_id, node, attempt, now))
        return attempt


def assignments(db: Database, run: str) -> list[Row]:
    return db.query("SELECT problem_id, node, attempt, assigned_at FROM partition_assignments WHERE run = ? "
                    "ORDER BY problem_id, attempt", (run,))


def ever_assigned(db: Database, run: str, problem_id: str, node: str) -> bool:
    return db.one("SELECT 1 AS x FROM partition_assignments WHERE run = ? AND problem_id = ? AND node = ?",
                  (run, problem_id, node)) is not None


def add_result(db: Database, run: str, node: str, values: dict[str, Any], now: float) -> bool:
    """Keep the first result for a problem; False when it has one already (a late or repeated report)."""
    with db.tx() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO partition_results(run, problem_id, node, tier, outcome, detail, tokens, wall_ms,"
            " solution_sha256, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run, values["problem_id"], node, values["tier"], values["outcome"], values["detail"][:1000],
             values["tokens"], values["wall_ms"], values["solution_sha256"], now))
        return bool(conn.changes())


def results(db: Database, run: str) -> list[Row]:
    return db.query("SELECT problem_id, node, tier, outcome, detail, tokens, wall_ms, solution_sha256, received_at "
                    "FROM partition_results WHERE run = ? ORDER BY problem_id", (run,))


def add_refusal(db: Database, run: str, node: str, problem_id: str, reason: str, now: float) -> None:
    db.execute("INSERT INTO partition_refusals(run, node, problem_id, reason, at) VALUES (?, ?, ?, ?, ?)",
               (run, node, problem_id, reason[:500], now))


def refusals(db: Database, run: str) -> list[Row]:
    return db.query("SELECT node, problem_id, reason, at FROM partition_refusals WHERE run = ? ORDER BY id", (run,))


# -- a node's own share ---------------------------------------------------------------------------
def add_work(db: Database, run: str, queen: str, suite: str, mode: str, problem_ids: Iterable[str],
             now: float) -> int:
    """Queue problems for this node to solve; returns how many were new (a repeated message adds none)."""
    added = 0
    with db.tx() as conn:
        for pid in problem_ids:
            conn.execute("INSERT OR IGNORE INTO partition_work(run, problem_id, queen, suite, mode, received_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (run, pid, queen, suite, mode, now))
            added += conn.changes()
    return added


def next_work(db: Database) -> Row | None:
    """The oldest pending problem of this node's share, if any."""
    return db.one("SELECT run, problem_id, queen, suite, mode FROM partition_work WHERE state = 'pending' "
                  "ORDER BY received_at, run, problem_id LIMIT 1")


def finish_work(db: Database, run: str, problem_id: str, outcome: str, now: float) -> bool:
    with db.tx() as conn:
        conn.execute("UPDATE partition_work SET state = 'done', outcome = ?, done_at = ? WHERE run = ? AND "
                     "problem_id = ? AND state = 'pending'", (outcome, now, run, problem_id))
        return bool(conn.changes())


def cancel_work(db: Database, run: str, queen: str, now: float) -> int:
    """Drop the pending problems of a run its coordinator closed; returns how many."""
    with db.tx() as conn:
        conn.execute("UPDATE partition_work SET state = 'cancelled', done_at = ? WHERE run = ? AND queen = ? AND "
                     "state = 'pending'", (now, run, queen))
        return int(conn.changes())


def work_rows(db: Database, run: str) -> list[Row]:
    return db.query("SELECT problem_id, queen, state, outcome, received_at, done_at FROM partition_work "
                    "WHERE run = ? ORDER BY problem_id", (run,))
