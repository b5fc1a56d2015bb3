"""SQL over the cartridge tables (migration 6): cartridges, versions, per-cartridge KV, logs.

Every function takes the node `Database`; nothing else in the package writes SQL.
"""

from __future__ import annotations

import hashlib
from typing import Any

from colony.store import Database, Row

__all__ = [
    "activate",
    "add_error",
    "delete_cartridge",
    "get_active",
    "get_cartridge",
    "get_version",
    "insert_version",
    "kv_snapshot",
    "kv_write",
    "list_cartridges",
    "list_versions",
    "log",
    "logs",
    "record_outcome",
    "set_fitness",
]

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


def get_cartridge(db: Database, slug: str) -> Row | None:
    return db.one("SELECT * FROM cartridges WHERE slug = ?", (slug,))


def list_cartridges(db: Database) -> list[Row]:
    return db.query(
        "SELECT c.*, v.calls, v.errors, v.fitness, (SELECT COUNT(*) FROM cartridge_versions x WHERE x.slug = c.slug)"
        " AS versions FROM cartridges c LEFT JOIN cartridge_versions v"
        " ON v.slug = c.slug AND v.version = c.active_version ORDER BY c.slug"
    )


def get_active(db: Database, slug: str) -> Row | None:
    """The cartridge with its active version's source, in one read (the hot path of a call)."""
    return db.one(
        "SELECT c.slug, c.lang, c.active_version, v.source FROM cartridges c JOIN cartridge_versions v"
        " ON v.slug = c.slug AND v.version = c.active_version WHERE c.slug = ?", (slug,))


def get_version(db: Database, slug: str, version: int) -> Row | None:
    return db.one("SELECT * FROM cartridge_versions WHERE slug = ? AND version = ?", (slug, version))


def list_versions(db: Database, slug: str) -> list[Row]:
    return db.query(
        "SELECT slug, version, sha256, status, calls, errors, fitness, note, created_at FROM cartridge_versions"
        " WHERE slug = ? ORDER BY version", (slug,))


def insert_version(
    db: Database, *, slug: str, kind: str, lang: str, interface: str | None, description: str, source: bytes,
    note: str = "",
) -> int:
    """Add a version and make it the active one, in one transaction (the atomic swap)."""
    digest = hashlib.sha256(source).hexdigest()
    with db.tx() as conn:
        conn.execute(
            "INSERT INTO cartridges(slug, kind, lang, interface, description) VALUES (?, ?, ?, ?, ?)"
            f" ON CONFLICT(slug) DO UPDATE SET kind = excluded.kind, lang = excluded.lang,"
            f" interface = excluded.interface,"
            f" description = CASE WHEN excluded.description = '' THEN description ELSE excluded.description END,"
            f" updated_at = {_NOW}",
            (slug, kind, lang, interface, description))
        version = int(next(iter(conn.execute(
            "SELECT COALESCE(MAX(version), 0) + 1 AS v FROM cartridge_versions WHERE slug = ?", (slug,))))["v"])
        conn.execute("UPDATE cartridge_versions SET status = 'retired' WHERE slug = ? AND status = 'active'", (slug,))
        conn.execute(
            "INSERT INTO cartridge_versions(slug, version, source, sha256, status, note) VALUES (?, ?, ?, ?, 'active', ?)",
            (slug, version, source, digest, note))
        conn.execute(f"UPDATE cartridges SET active_version = ?, updated_at = {_NOW} WHERE slug = ?", (version, slug))
    return version


def activate(db: Database, slug: str, version: int, *, demote_to: str = "rolled_back") -> None:
    """Make ``version`` active; the one it replaces gets ``demote_to`` (rolled_back or retired)."""
    with db.tx() as conn:
        conn.execute("UPDATE cartridge_versions SET status = ? WHERE slug = ? AND status = 'active'",
                     (demote_to, slug))
        conn.execute("UPDATE cartridge_versions SET status = 'active' WHERE slug = ? AND version = ?", (slug, version))
        conn.execute(f"UPDATE cartridges SET active_version = ?, updated_at = {_NOW} WHERE slug = ?", (version, slug))


def delete_cartridge(db: Database, slug: str) -> bool:
    """Remove a cartridge with its versions, KV and logs (cascading deletes)."""
    with db.tx() as conn:
        conn.execute("DELETE FROM cartridges WHERE slug = ?", (slug,))
        return bool(conn.changes())


def kv_snapshot(db: Database, slug: str) -> dict[str, bytes]:
    return {r[0]: bytes(r[1]) for r in db.tuples("SELECT key, value FROM cartridge_kv WHERE slug = ?", (slug,))}


def kv_write(db: Database, slug: str, sets: dict[str, bytes], deletes: set[str]) -> None:
    """Persist one call's KV changes in one transaction."""
    if not sets and not deletes:
        return
    with db.tx() as conn:
        for key in deletes:
            conn.execute("DELETE FROM cartridge_kv WHERE slug = ? AND key = ?", (slug, key))
        for key, value in sets.items():
            conn.execute("INSERT INTO cartridge_kv(slug, key, value) VALUES (?, ?, ?)"
                         " ON CONFLICT(slug, key) DO UPDATE SET value = excluded.value", (slug, key, value))


def record_outcome(db: Database, slug: str, version: int, *, error: bool, messages: list[tuple[str, str]]) -> Row:
    """Count a call (and its error) against its version, store its log lines; return the version row."""
    with db.tx() as conn:
        row: Row = next(iter(conn.execute(
            "UPDATE cartridge_versions SET calls = calls + 1, errors = errors + ? WHERE slug = ? AND version = ?"
            " RETURNING version, status, calls, errors, fitness", (1 if error else 0, slug, version))))
        for level, message in messages:
            conn.execute("INSERT INTO cartridge_logs(slug, version, level, message) VALUES (?, ?, ?, ?)",
                         (slug, version, level, message[:4000]))
    return row


def add_error(db: Database, slug: str, version: int, message: str) -> Row | None:
    """Count an error found after a call succeeded (its answer broke an interface); return the version."""
    with db.tx() as conn:
        rows = list(conn.execute(
            "UPDATE cartridge_versions SET errors = MIN(calls, errors + 1) WHERE slug = ? AND version = ?"
            " RETURNING version, status, calls, errors, fitness", (slug, version)))
        conn.execute("INSERT INTO cartridge_logs(slug, version, level, message) VALUES (?, ?, 'error', ?)",
                     (slug, version, message[:4000]))
    return rows[0] if rows else None


def set_fitness(db: Database, slug: str, version: int, fitness: float) -> None:
    db.execute("UPDATE cartridge_versions SET fitness = ? WHERE slug = ? AND version = ?", (fitness, slug, version))


def log(db: Database, slug: str, version: int | None, level: str, message: str) -> None:
    db.execute("INSERT INTO cartridge_logs(slug, version, level, message) VALUES (?, ?, ?, ?)",
               (slug, version, level, message[:4000]))


def logs(db: Database, slug: str, limit: int = 50) -> list[dict[str, Any]]:
    rows = db.query("SELECT id, version, level, message, at FROM cartridge_logs WHERE slug = ? ORDER BY id DESC LIMIT ?",
                    (slug, limit))
    return list(reversed(rows))
