"""Curation: expire, collapse exact duplicates, decay unverified confidence — one call, one report.

Decay is rate × days since the last curation (kept in `memory_meta`), so calling curate often
or rarely decays by the same amount per day; it never goes below the configured floor so a
decayed memory still surfaces.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from colony.config import Settings
from colony.memory.store import MemoryStore

__all__ = ["CurationReport", "curate"]

class CurationReport(BaseModel):
    expired: int
    duplicates_removed: int
    decayed: int
    decay_days: float


def curate(store: MemoryStore, settings: Settings, *, now: datetime | None = None) -> CurationReport:
    now = now or datetime.now(UTC)
    with store.write() as w:
        expired = w.expired_ids()
        for mid in expired:
            w.delete_memory(mid)
        dupes = w.duplicate_losers()
        for mid in dupes:
            w.delete_memory(mid)
        last = w.get_meta("last_decay_at")
        days = 0.0 if last is None else max(0.0, (now - datetime.fromisoformat(last)).total_seconds() / 86_400)
        decayed = 0
        if days > 0 and settings.memory_decay_per_day > 0:
            decayed = w.decay_unverified(settings.memory_decay_per_day * days, settings.memory_decay_floor)
        w.set_meta("last_decay_at", now.isoformat())
    return CurationReport(expired=len(expired), duplicates_removed=len(dupes), decayed=decayed,
                          decay_days=round(days, 4))
