"""`RecordStore` on the node's SQLite file: sessions, turns, messages, episodes and the audit.

The default engine. Writers are serialised by SQLite's write lock (``BEGIN IMMEDIATE``), which
is what keeps approvals decided once across threads and processes: the decision is one guarded
``UPDATE … WHERE status = 'pending'`` and its change count says who won. Timestamps are written by
SQLite's clock as ISO-8601 text with milliseconds. A `Database` transaction already open on the
calling thread is joined (governance offers and answers approvals inside its own).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from colony.llm.messages import Message
from colony.store._db import Database, Row
from colony.store.audit import ApprovalRecord, ApprovalStatus, LlmCallRecord, ToolCallRecord, tool_call_filter
from colony.store.sessions import (
    ORPHANED_TURN_ERROR,
    Episode,
    TurnEnd,
    message_row,
    messages_from_bodies,
    pid_alive,
    session_row,
    turn_row,
)

__all__ = ["SqliteRecordStore"]

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


class SqliteRecordStore:
    """`RecordStore` over one node `Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- sessions and turns ----------------------------------------------------------------------
    def create_session(self, *, title: str = "", surface: str = "cli", agent: str = "colony") -> str:
        row = session_row(title=title, surface=surface, agent=agent)
        self.db.execute("INSERT INTO sessions(id, title, surface, agent) VALUES (:id, :title, :surface, :agent)", row)
        return str(row["id"])

    def get_session(self, session_id: str) -> Row | None:
        return self.db.one("SELECT * FROM sessions WHERE id = ?", (session_id,))

    def get_sessions(self, session_ids: Sequence[str]) -> list[Row]:
        return self.db.query("SELECT * FROM sessions WHERE id IN (SELECT value FROM json_each(?))",
                             (json.dumps(list(session_ids)),))

    def list_sessions(self, *, limit: int = 20, offset: int = 0) -> list[Row]:
        return self.db.query(
            """SELECT s.*, (SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id) AS turns
               FROM sessions s ORDER BY s.updated_at DESC, s.rowid DESC LIMIT ? OFFSET ?""",
            (limit, offset),
        )

    def start_turn(self, session_id: str, prompt: str, perception: dict[str, Any] | None) -> str:
        row = turn_row(session_id, prompt, perception)
        with self.db.tx() as conn:
            conn.execute(
                """INSERT INTO turns(id, session_id, status, prompt, perception, pid)
                   VALUES (:id, :session_id, 'running', :prompt, :perception, :pid)""",
                row,
            )
            conn.execute(f"UPDATE sessions SET updated_at = {_NOW} WHERE id = ?", (session_id,))
        return str(row["id"])

    def finish_turn(self, turn_id: str, end: TurnEnd) -> None:
        self.db.execute(
            f"""UPDATE turns SET status = :status, final_text = :final_text, error = :error, tool_calls = :tool_calls,
               model_requests = :model_requests, prompt_tokens = :prompt_tokens,
               completion_tokens = :completion_tokens, finished_at = {_NOW} WHERE id = :id""",
            end.at_rest(turn_id),
        )

    def get_turn(self, turn_id: str) -> Row | None:
        return self.db.one("SELECT * FROM turns WHERE id = ?", (turn_id,))

    def list_turns(self, session_id: str) -> list[Row]:
        return self.db.query("SELECT * FROM turns WHERE session_id = ? ORDER BY started_at, rowid", (session_id,))

    def interrupt_orphaned_turns(self) -> int:
        rows = self.db.query("SELECT id, pid FROM turns WHERE status = 'running'")
        dead = [r["id"] for r in rows if r["pid"] is None or not pid_alive(int(r["pid"]))]
        with self.db.tx() as conn:
            for tid in dead:
                conn.execute(
                    f"""UPDATE turns SET status = 'interrupted', error = ?, finished_at = {_NOW}
                       WHERE id = ? AND status = 'running'""",
                    (ORPHANED_TURN_ERROR, tid),
                )
            conn.execute(
                f"""UPDATE approvals SET status = 'expired', decided_by = 'process_stopped', decided_at = {_NOW}
                   WHERE status = 'pending' AND turn_id IS NOT NULL
                     AND turn_id NOT IN (SELECT id FROM turns WHERE status = 'running')"""
            )
        return len(dead)

    # -- messages and episodes -------------------------------------------------------------------
    def add_message(self, session_id: str, turn_id: str | None, message: Message) -> int:
        return self.db.execute(
            "INSERT INTO messages(session_id, turn_id, kind, body) VALUES (:session_id, :turn_id, :kind, :body)",
            message_row(session_id, turn_id, message),
        )

    def load_messages(self, session_id: str, *, limit: int | None = None) -> list[Message]:
        if limit is None:
            rows = self.db.query("SELECT body FROM messages WHERE session_id = ? ORDER BY id", (session_id,))
        else:
            rows = self.db.query(
                "SELECT body FROM (SELECT id, body FROM messages WHERE session_id = ? ORDER BY id DESC LIMIT ?) "
                "ORDER BY id",
                (session_id, limit),
            )
        return messages_from_bodies(r["body"] for r in rows)

    def add_episode(self, episode: Episode) -> int:
        return self.db.execute(
            """INSERT INTO episodes(session_id, turn_id, asked, done, outcome, sentiment, tags)
               VALUES (:session_id, :turn_id, :asked, :done, :outcome, :sentiment, :tags)""",
            episode.at_rest(),
        )

    def list_episodes(self, *, session_id: str | None = None, limit: int = 50) -> list[Row]:
        if session_id:
            return self.db.query(
                "SELECT * FROM episodes WHERE session_id = ? ORDER BY id DESC LIMIT ?", (session_id, limit)
            )
        return self.db.query("SELECT * FROM episodes ORDER BY id DESC LIMIT ?", (limit,))

    # -- the audit -------------------------------------------------------------------------------
    def record_tool_call(self, rec: ToolCallRecord) -> int:
        return self.db.execute(
            """INSERT INTO tool_calls(session_id, turn_id, call_id, tool, arguments, outcome, error,
               result_preview, latency_ms, approval, risk)
               VALUES (:session_id, :turn_id, :call_id, :tool, :arguments, :outcome, :error,
               :result_preview, :latency_ms, :approval, :risk)""",
            rec.at_rest(),
        )

    def list_tool_calls(self, *, session_id: str | None = None, tool: str | None = None,
                        outcome: str | None = None, limit: int = 50, before_id: int | None = None) -> list[Row]:
        clause, params = tool_call_filter("?", session_id=session_id, tool=tool, outcome=outcome, before_id=before_id)
        return self.db.query(f"SELECT * FROM tool_calls {clause} ORDER BY id DESC LIMIT ?", (*params, limit))

    def create_approval(self, rec: ApprovalRecord) -> None:
        self.db.execute(
            """INSERT INTO approvals(id, session_id, turn_id, call_id, tool, arguments, reason, status, expires_at)
               VALUES (:id, :session_id, :turn_id, :call_id, :tool, :arguments, :reason, 'pending',
                       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('+%.3f seconds', :timeout_s)))""",
            rec.at_rest(),
        )

    def get_approval(self, approval_id: str) -> Row | None:
        return self.db.one("SELECT * FROM approvals WHERE id = ?", (approval_id,))

    def decide_approval(self, approval_id: str, status: ApprovalStatus, decided_by: str) -> bool:
        with self.db.tx() as conn:
            conn.execute(
                f"""UPDATE approvals SET status = ?, decided_by = ?, decided_at = {_NOW}
                   WHERE id = ? AND status = 'pending'""",
                (status, decided_by, approval_id),
            )
            return bool(conn.changes())

    def expire_approvals(self) -> int:
        with self.db.tx() as conn:
            conn.execute(
                f"""UPDATE approvals SET status = 'expired', decided_by = 'timeout', decided_at = {_NOW}
                   WHERE status = 'pending' AND expires_at < {_NOW}"""
            )
            return int(conn.changes())

    def list_approvals(self, *, status: ApprovalStatus | None = None, limit: int = 50) -> list[Row]:
        if status:
            return self.db.query(
                "SELECT * FROM approvals WHERE status = ? ORDER BY created_at DESC LIMIT ?", (status, limit)
            )
        return self.db.query("SELECT * FROM approvals ORDER BY created_at DESC LIMIT ?", (limit,))

    def record_llm_call(self, rec: LlmCallRecord) -> int:
        return self.db.execute(
            """INSERT INTO llm_calls(session_id, turn_id, provider, model, prompt_tokens, completion_tokens,
               latency_ms, outcome, error) VALUES (:session_id, :turn_id, :provider, :model, :prompt_tokens,
               :completion_tokens, :latency_ms, :outcome, :error)""",
            rec.at_rest(),
        )

    def list_llm_calls(self, *, turn_id: str | None = None, limit: int = 100) -> list[Row]:
        if turn_id:
            return self.db.query("SELECT * FROM llm_calls WHERE turn_id = ? ORDER BY id LIMIT ?", (turn_id, limit))
        return self.db.query("SELECT * FROM llm_calls ORDER BY id DESC LIMIT ?", (limit,))

    def recent_call_ages(self, provider: str, *, within_s: float = 86_400.0) -> list[float]:
        rows = self.db.query(
            """SELECT (julianday('now') - julianday(created_at)) * 86400.0 AS age FROM llm_calls
               WHERE provider = ? AND created_at >= strftime('%Y-%m-%dT%H:%M:%fZ','now', ?)""",
            (provider, f"-{float(within_s):.3f} seconds"),
        )
        return [max(0.0, float(r["age"])) for r in rows]

    def usage_totals(self, *, since_hours: float = 24.0) -> list[Row]:
        return self.db.query(
            """SELECT provider, model, COUNT(*) AS calls, SUM(outcome = 'ok') AS ok,
                      SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens
               FROM llm_calls WHERE created_at >= strftime('%Y-%m-%dT%H:%M:%fZ','now', ?)
               GROUP BY provider, model ORDER BY calls DESC""",
            (f"-{float(since_hours):.3f} hours",),
        )
