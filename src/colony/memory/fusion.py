"""Fusion helpers that outlived weighted rank fusion: age, and fitting memories into a context budget.

The ranking itself is calibrated (`colony.memory._calibrated`); confidence, verification and
freshness only break near-ties there (`FRESHNESS_FLOOR`: old memories fade, never vanish).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

__all__ = ["FRESHNESS_FLOOR", "age_days", "compress"]

FRESHNESS_FLOOR = 0.85


def age_days(created_at: str, now: datetime) -> float:
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return max(0.0, (now - created).total_seconds() / 86_400)


def compress(texts: Sequence[str], budget_chars: int) -> list[str]:
    """Keep whole memories in order while they fit; shorten the one that crosses the budget."""
    out: list[str] = []
    used = 0
    for text in texts:
        text = " ".join(text.split())
        room = budget_chars - used
        if room <= 40:
            break
        if len(text) > room:
            out.append(text[: room - 1].rstrip() + "…")
            break
        out.append(text)
        used += len(text) + 3  # the "- " bullet and newline the context adds
    return out
