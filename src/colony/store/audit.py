"""The audit trail: every tool call, every approval decision, every model call.

Arguments are redacted by the caller before they reach these functions (see
`colony.tools.redact`); this module stores what it is given and never sees a raw secret.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from colony.redaction import redact, redact_text
from colony.store._db import Database, Row

__all__ = [
    "ApprovalStatus",
    "ToolCallRecord",
    "create_approval",
    "decide_approval",
    "expire_approvals",
    "get_approval",
    "list_approvals",
    "list_llm_calls",
    "list_tool_calls",
    "recent_call_ages",
    "record_llm_call",
    "record_tool_call",
    "usage_totals",
]

ApprovalStatus = Literal["pending", "approved", "denied", "expired"]


class ToolCallRecord(BaseModel):
    session_id: str | None
    turn_id: str | None
    call_id: str
    tool: str
    arguments: Any
    outcome: str
    error: str | None = None
    result_preview: str | None = None
    latency_ms: float
    approval: str
    risk: list[str] = []


def record_tool_call(db: Database, rec: ToolCallRecord) -> int:
    return db.execute(
        """INSERT INTO tool_calls(session_id, turn_id, call_id, tool, arguments, outcome, error,
           result_preview, latency_ms, approval, risk) VALUES (?,?,?,?,?,?,?,?,?,?,?)""",
        (
            rec.session_id,
            rec.turn_id,
            rec.call_id,
            rec.tool,
            json.dumps(redact(rec.arguments), ensure_ascii=False, default=str),
            rec.outcome,
            None if rec.error is None else redact_text(rec.error),
            None if rec.result_preview is None else redact_text(rec.result_preview),
            rec.latency_ms,
            rec.approval,
            json.dumps(rec.risk),
        ),
    )


def list_tool_calls(
    db: Database,
    *,
    session_id: str | None = None,
    tool: str | None = None,
    outcome: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Row]:
    """Newest first; page with ``before_id`` (the smallest id of the previous page)."""
    where: list[str] = []
    params: list[object] = []
    for column, value in (("session_id", session_id), ("tool", tool), ("outcome", outcome)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    return db.query(f"SELECT * FROM tool_calls {clause} ORDER BY id DESC LIMIT ?", (*params, limit))


def create_approval(
    db: Database,
    *,
    approval_id: str,
    session_id: str | None,
    turn_id: str | None,
    call_id: str,
    tool: str,
    arguments: Any,
    reason: str,
    timeout_s: float,
) -> None:
    db.execute(
        """INSERT INTO approvals(id, session_id, turn_id, call_id, tool, arguments, reason, status, expires_at)
           VALUES (?,?,?,?,?,?,?,'pending', strftime('%Y-%m-%dT%H:%M:%fZ','now', ?))""",
        (
            approval_id,
            session_id,
            turn_id,
            call_id,
            tool,
            json.dumps(redact(arguments), ensure_ascii=False, default=str),
            redact_text(reason),
            f"+{float(timeout_s):.3f} seconds",
        ),
    )


def get_approval(db: Database, approval_id: str) -> Row | None:
    return db.one("SELECT * FROM approvals WHERE id = ?", (approval_id,))


def decide_approval(db: Database, approval_id: str, status: ApprovalStatus, decided_by: str) -> bool:
    """Record a decision on a pending approval. Returns False if it was not pending any more."""
    with db.tx() as conn:
        conn.execute(
            """UPDATE approvals SET status = ?, decided_by = ?, decided_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
               WHERE id = ? AND status = 'pending'""",
            (status, decided_by, approval_id),
        )
        return bool(conn.changes())


def expire_approvals(db: Database) -> int:
    """Mark pending approvals past their deadline as expired (a timeout is a deny)."""
    with db.tx() as conn:
        conn.execute(
            """UPDATE approvals SET status = 'expired', decided_by = 'timeout',
               decided_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
               WHERE status = 'pending' AND expires_at < strftime('%Y-%m-%dT%H:%M:%fZ','now')"""
        )
        return int(conn.changes())


def list_approvals(db: Database, *, status: ApprovalStatus | None = None, limit: int = 50) -> list[Row]:
    if status:
        return db.query(
            "SELECT * FROM approvals WHERE status = ? ORDER BY created_at DESC LIMIT ?", (status, limit)
        )
    return db.query("SELECT * FROM approvals ORDER BY created_at DESC LIMIT ?", (limit,))


def record_llm_call(
    db: Database,
    *,
    session_id: str | None,
    turn_id: str | None,
    provider: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: float,
    outcome: str,
    error: str | None,
) -> int:
    return db.execute(
        """INSERT INTO llm_calls(session_id, turn_id, provider, model, prompt_tokens, completion_tokens,
           latency_ms, outcome, error) VALUES (?,?,?,?,?,?,?,?,?)""",
        (session_id, turn_id, provider, model, prompt_tokens, completion_tokens, latency_ms, outcome,
         None if error is None else redact_text(error)),
    )


def list_llm_calls(db: Database, *, turn_id: str | None = None, limit: int = 100) -> list[Row]:
    if turn_id:
        return db.query("SELECT * FROM llm_calls WHERE turn_id = ? ORDER BY id LIMIT ?", (turn_id, limit))
    return db.query("SELECT * FROM llm_calls ORDER BY id DESC LIMIT ?", (limit,))


def recent_call_ages(db: Database, provider: str, *, within_s: float = 86_400.0) -> list[float]:
    """Seconds since each call to ``provider`` in the last ``within_s`` seconds (for rate limits)."""
    rows = db.query(
        """SELECT (julianday('now') - julianday(created_at)) * 86400.0 AS age FROM llm_calls
           WHERE provider = ? AND created_at >= strftime('%Y-%m-%dT%H:%M:%fZ','now', ?)""",
        (provider, f"-{float(within_s):.3f} seconds"),
    )
    return [max(0.0, float(r["age"])) for r in rows]


def usage_totals(db: Database, *, since_hours: float = 24.0) -> list[Row]:
    """Calls and tokens per provider and model over the last ``since_hours``."""
    return db.query(
        """SELECT provider, model, COUNT(*) AS calls, SUM(outcome = 'ok') AS ok,
                  SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens
           FROM llm_calls WHERE created_at >= strftime('%Y-%m-%dT%H:%M:%fZ','now', ?)
           GROUP BY provider, model ORDER BY calls DESC""",
        (f"-{float(since_hours):.3f} hours",),
    )
