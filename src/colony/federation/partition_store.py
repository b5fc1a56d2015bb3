"""SQL over the partitioned benchmark's tables (migrations 23 and 25, `colony.store.partition_schema` and
`colony.store.partition_adopt_schema`); nothing else here.

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
    "cancel_run_work",
    "cancel_work",
    "copy_assignment",
    "done_reports",
    "ever_assigned",
    "finish_work",
    "get_run",
    "insert_run",
    "list_runs",
    "next_work",
    "open_runs",
    "refusals",
    "results",
    "set_coordinator",
    "set_merged",
    "set_running",
    "work_rows",
]

_RUN = ("id, queen, term, requester, suite, mode, problem_limit, problem_timeout_s, state, problems, bench_run, "
        "summary, created_at, started_at, finished_at")


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
            "INSERT INTO partition_runs(id, queen, term, requester, suite, mode, problem_limit, problem_timeout_s, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (values["id"], values["queen"], values.get("term", 0), values["requester"], values["suite"],
             values["mode"], values["problem_limit"], values["problem_timeout_s"], values["created_at"]))
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


def set_running(db: Database, run: str, problems: int, now: float, term: int | None = None) -> bool:
    """Start a requested run (planned here, or a copy of one planned elsewhere), under ``term`` if given."""
    with db.tx() as conn:
        conn.execute("UPDATE partition_runs SET state = 'running', problems = ?, started_at = ?, "
                     "term = COALESCE(?, term) WHERE id = ? AND state = 'requested'", (problems, now, term, run))
        return bool(conn.changes())


def set_coordinator(db: Database, run: str, queen: str, term: int) -> bool:
    """Have ``queen`` coordinate the open run under ``term``; False unless ``term`` is higher than its own."""
    with db.tx() as conn:
        conn.execute("UPDATE partition_runs SET queen = ?, term = ? WHERE id = ? AND state != 'merged' AND term < ?",
                     (queen, term, run, term))
        return bool(conn.changes())


def set_merged(db: Database, run: str, bench_run: str, summary: dict[str, Any], problems: int, now: float,
               by: tuple[str, int] | None = None) -> bool:
    """Mark the run merged as ``bench_run``; False when it was merged already (or, with ``by``, when
    its coordinator and term are no longer that pair)."""
    queen, term = by if by is not None else (None, None)
    with db.tx() as conn:
        conn.execute("UPDATE partition_runs SET state = 'merged', bench_run = ?, summary = ?, problems = ?, "
                     "finished_at = ? WHERE id = ? AND state != 'merged' AND (? IS NULL OR (queen = ? AND term = ?))",
                     (bench_run, json.dumps(summary, sort_keys=True), problems, now, run, queen, queen, term))
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


def copy_assignment(db: Database, run: str, problem_id: str, node: str, attempt: int, now: float) -> bool:
    """Keep a coordinator's assignment as it numbered it; False when this copy holds it (or that attempt) already."""
    with db.tx() as conn:
        conn.execute("INSERT OR IGNORE INTO partition_assignments(run, problem_id, node, attempt, assigned_at) "
                     "VALUES (?, ?, ?, ?, ?)", (run, problem_id, node, attempt, now))
        return bool(conn.changes())


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


def finish_work(db: Database, run: str, problem_id: str, outcome: str, now: float, report: str | None = None) -> bool:
    """Mark a problem of this node's share done, keeping its verdict (``report``, JSON) whole."""
    with db.tx() as conn:
        conn.execute("UPDATE partition_work SET state = 'done', outcome = ?, done_at = ?, report = ? WHERE run = ? "
                     "AND problem_id = ? AND state = 'pending'", (outcome, now, report, run, problem_id))
        return bool(conn.changes())


def done_reports(db: Database, run: str) -> list[str]:
    """The verdicts (JSON) this node reached on its share of a run, in problem order."""
    return [str(r["report"]) for r in db.query("SELECT report FROM partition_work WHERE run = ? AND state = 'done' "
                                               "AND report IS NOT NULL ORDER BY problem_id", (run,))]


def cancel_work(db: Database, run: str, queen: str, now: float) -> int:
    """Drop the pending problems of a run its coordinator closed; returns how many."""
    with db.tx() as conn:
        conn.execute("UPDATE partition_work SET state = 'cancelled', done_at = ? WHERE run = ? AND queen = ? AND "
                     "state = 'pending'", (now, run, queen))
        return int(conn.changes())


def cancel_run_work(db: Database, run: str, now: float) -> int:
    """Drop every pending problem of a merged run, whichever coordinator gave it; returns how many."""
    with db.tx() as conn:
        conn.execute("UPDATE partition_work SET state = 'cancelled', done_at = ? WHERE run = ? AND state = 'pending'",
                     (now, run))
        return int(conn.changes())


def work_rows(db: Database, run: str) -> list[Row]:
    return db.query("SELECT problem_id, queen, state, outcome, received_at, done_at FROM partition_work "
                    "WHERE run = ? ORDER BY problem_id", (run,))
