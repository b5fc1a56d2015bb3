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
from colony.store import Database
from colony.store import memory as sql

__all__ = ["CurationReport", "curate"]

class CurationReport(BaseModel):
    expired: int
    duplicates_removed: int
    decayed: int
    decay_days: float


def curate(db: Database, settings: Settings, vector_tables: Sequence[str], *, now: datetime | None = None) -> CurationReport:
    now = now or datetime.now(UTC)
    with db.tx() as conn:
        expired = sql.expired_ids(conn)
        for mid in expired:
            sql.delete_memory(conn, mid, vector_tables)
        dupes = sql.duplicate_losers(conn)
        for mid in dupes:
            sql.delete_memory(conn, mid, vector_tables)
        last = sql.get_meta(conn, "last_decay_at")
        days = 0.0 if last is None else max(0.0, (now - datetime.fromisoformat(last)).total_seconds() / 86_400)
        decayed = 0
        if days > 0 and settings.memory_decay_per_day > 0:
            decayed = sql.decay_unverified(conn, settings.memory_decay_per_day * days, settings.memory_decay_floor)
        sql.set_meta(conn, "last_decay_at", now.isoformat())
    return CurationReport(expired=len(expired), duplicates_removed=len(dupes), decayed=decayed,
                          decay_days=round(days, 4))
