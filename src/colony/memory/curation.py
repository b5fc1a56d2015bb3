"""Curation: expire, collapse exact duplicates, decay unverified confidence — one call, one report.

Decay is rate × days since the last curation (kept in `memory_meta`), so calling curate often
or rarely decays by the same amount per day; it never goes below the configured floor so a
decayed memory still surfaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel

from colony.config import Settings
from colony.store import Database, Row
from colony.store import memory as sql

__all__ = ["CurationReport", "curate"]

_VERIFIED_RANK = "CASE verified WHEN 'system_verified' THEN 2 WHEN 'user_stated' THEN 1 ELSE 0 END"


class CurationReport(BaseModel):
    expired: int
    duplicates_removed: int
    decayed: int
    decay_days: float


def curate(db: Database, settings: Settings, vector_tables: Sequence[str], *, now: datetime | None = None) -> CurationReport:
    now = now or datetime.now(UTC)
    with db.tx() as conn:
        expired_ids = [int(r["id"]) for r in conn.execute(
            "SELECT id FROM memories WHERE expires_at IS NOT NULL AND expires_at <= strftime('%Y-%m-%dT%H:%M:%fZ','now')")]
        for mid in expired_ids:
            sql.delete_memory(conn, mid, vector_tables)
        dupes: list[int] = []
        groups: list[Row] = list(conn.execute(
            """SELECT content_hash FROM memories WHERE superseded_by IS NULL
               GROUP BY content_hash HAVING COUNT(*) > 1"""
        ))
        for group in groups:
            ranked = [int(r["id"]) for r in conn.execute(
                f"""SELECT id FROM memories WHERE content_hash = ? AND superseded_by IS NULL
                    ORDER BY {_VERIFIED_RANK} DESC, confidence DESC, created_at ASC, id ASC""",
                (group["content_hash"],))]
            dupes.extend(ranked[1:])
        for mid in dupes:
            sql.delete_memory(conn, mid, vector_tables)
        last = conn.execute("SELECT value FROM memory_meta WHERE key = 'last_decay_at'").fetchone()
        days = 0.0
        if last is not None:
            days = max(0.0, (now - datetime.fromisoformat(last["value"])).total_seconds() / 86_400)
        decayed = 0
        if days > 0 and settings.memory_decay_per_day > 0:
            conn.execute(
                """UPDATE memories SET confidence = MAX(?, confidence - ?)
                   WHERE verified = 'inferred' AND confidence > ?""",
                (settings.memory_decay_floor, settings.memory_decay_per_day * days, settings.memory_decay_floor),
            )
            decayed = int(conn.changes())
        conn.execute(
            "INSERT INTO memory_meta(key, value) VALUES ('last_decay_at', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (now.isoformat(),),
        )
    return CurationReport(expired=len(expired_ids), duplicates_removed=len(dupes), decayed=decayed,
                          decay_days=round(days, 4))
