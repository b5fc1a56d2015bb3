"""The ACP surface's table: which Colony sessions an editor opened, in which folder and mode.

The conversation itself lives in the node's records (sessions, turns, messages:
`colony.store.records`) like every other surface's, in the SQLite file or on PostgreSQL; this row
only adds what `session/load` and `session/list` need after a restart, and stays in the node's
SQLite file because it names a folder on this machine. The title and the last activity come from
the session record, joined here rather than in SQL because the two may live in different engines.
Each write is one SQLite transaction, so a crash leaves the old row or the new one, never half.
"""

from __future__ import annotations

from pydantic import BaseModel

from colony.store import Database, Row
from colony.store.records import RecordStore

__all__ = ["AcpSessionRow", "get_acp_session", "list_acp_sessions", "save_acp_session", "set_acp_mode"]


class AcpSessionRow(BaseModel):
    id: str
    cwd: str
    mode: str
    title: str
    updated_at: str


def _joined(acp: Row, session: Row) -> AcpSessionRow:
    return AcpSessionRow(id=acp["id"], cwd=acp["cwd"], mode=acp["mode"], title=session["title"],
                         updated_at=session["updated_at"])


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


def get_acp_session(db: Database, records: RecordStore, session_id: str) -> AcpSessionRow | None:
    row = db.one("SELECT id, cwd, mode FROM acp_sessions WHERE id = ?", (session_id,))
    session = records.get_session(session_id) if row else None
    return _joined(row, session) if row and session else None


def list_acp_sessions(db: Database, records: RecordStore, *, cwd: str | None, limit: int,
                      offset: int) -> list[AcpSessionRow]:
    """Newest activity first (ties: the latest opened first); ``cwd`` filters to one project folder."""
    where, params = ("WHERE cwd = ?", (cwd,)) if cwd else ("", ())
    rows = db.query(f"SELECT id, cwd, mode FROM acp_sessions {where} ORDER BY rowid DESC", params)
    sessions = {s["id"]: s for s in records.get_sessions([r["id"] for r in rows])}
    joined = [_joined(r, sessions[r["id"]]) for r in rows if r["id"] in sessions]
    joined.sort(key=lambda r: r.updated_at, reverse=True)  # stable: equal times keep the rowid order
    return joined[offset:offset + limit]
