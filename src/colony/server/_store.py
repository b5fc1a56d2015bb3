"""The server's own table: web login sessions (migration 7, ``web_sessions``).

Only a keyed hash of a session id is stored, so reading the database (or a backup of it) does
not yield a cookie that works; `colony.server.auth` computes the hash.
"""

from __future__ import annotations

from colony.store import Database

__all__ = ["add_web_session", "delete_web_session", "purge_web_sessions", "web_session_alive"]


def add_web_session(db: Database, id_hash: str, now: float, expires_at: float) -> None:
    db.execute("INSERT INTO web_sessions(id_hash, created_at, expires_at) VALUES (?, ?, ?)", (id_hash, now, expires_at))


def web_session_alive(db: Database, id_hash: str, now: float) -> bool:
    return db.scalar("SELECT 1 FROM web_sessions WHERE id_hash = ? AND expires_at > ?", (id_hash, now)) is not None


def delete_web_session(db: Database, id_hash: str) -> bool:
    with db.tx() as conn:
        conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,))
        return bool(conn.changes())


def purge_web_sessions(db: Database, now: float) -> int:
    """Drop expired sessions (called on each login, so the table stays the size of live logins)."""
    with db.tx() as conn:
        conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (now,))
        return int(conn.changes())
