"""The ACP surface's table: which Colony sessions an editor opened, in which folder and mode.

The conversation itself lives in the core tables (sessions, turns, messages) like every other
surface's; this row only adds what `session/load` and `session/list` need after a restart.
Each write is one SQLite transaction, so a crash leaves the old row or the new one, never half.
"""

from __future__ import annotations

from pydantic import BaseModel

from colony.store import Database

__all__ = ["AcpSessionRow", "get_acp_session", "list_acp_sessions", "save_acp_session", "set_acp_mode"]


class AcpSessionRow(BaseModel):
    id: str
    cwd: str
    mode: str
    title: str
    updated_at: str


_SELECT = """SELECT a.id, a.cwd, a.mode, s.title, s.updated_at FROM acp_sessions a JOIN sessions s ON s.id = a.id"""


def save_acp_session(db: Database, session_id: str, cwd: str, mode: str) -> None:
    db.execute(
        """INSERT INTO acp_sessions(id, cwd, mode) VALUES (?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET cwd = excluded.cwd, mode = excluded.mode,
           updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')""",
        (session_id, cwd, mode),
    )


def set_acp_mode(db: Database, session_id: str, mode: str) -> None:
    db.execute(
        "UPDATE acp_sessions SET mode = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?",
        (mode, session_id),
    )


def get_acp_session(db: Database, session_id: str) -> AcpSessionRow | None:
    row = db.one(f"{_SELECT} WHERE a.id = ?", (session_id,))
    return AcpSessionRow.model_validate(dict(row)) if row else None


def list_acp_sessions(db: Database, *, cwd: str | None, limit: int, offset: int) -> list[AcpSessionRow]:
    """Newest activity first; ``cwd`` filters to one project folder."""
    where, params = ("WHERE a.cwd = ?", (cwd,)) if cwd else ("", ())
    rows = db.query(
        f"{_SELECT} {where} ORDER BY s.updated_at DESC, a.rowid DESC LIMIT ? OFFSET ?", (*params, limit, offset)
    )
    return [AcpSessionRow.model_validate(dict(r)) for r in rows]
