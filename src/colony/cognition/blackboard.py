"""Blackboard (module 3): the global workspace modules post to and read from.

Each entry has a source module and a salience: a weighted sum of novelty, uncertainty
reduction, goal relevance and urgency under a named weight profile (the current regime picks
the profile), scaled per factor by neuromodulation. Novelty is measured, not declared: a post
that repeats an entry already on the board (same source, most of the same words) refreshes that
entry instead of adding a duplicate. Reads are tracked per reading module, because the
integration proxy (phi) is computed from who reads whom. Entries age out after a number of
turns, and the lowest-salience ones go first when the board is full. Only entries at or above
the broadcast threshold reach the model's context.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROFILES", "Blackboard", "Entry", "SalienceFactors"]

_WORD = re.compile(r"[a-z0-9_]+")
FACTORS = ("novelty", "uncertainty_reduction", "goal_relevance", "urgency")
#: Named weight profiles (novelty, uncertainty reduction, goal relevance, urgency).
PROFILES: dict[str, tuple[float, float, float, float]] = {
    "default": (0.25, 0.25, 0.3, 0.2),
    "explore": (0.4, 0.35, 0.15, 0.1),
    "exploit": (0.1, 0.1, 0.45, 0.35),
    "conservative": (0.1, 0.15, 0.25, 0.5),
}
#: Word overlap (Jaccard) above which a post from the same source counts as a repeat.
REPEAT_OVERLAP = 0.8


@dataclass(frozen=True)
class SalienceFactors:
    uncertainty_reduction: float = 0.0
    goal_relevance: float = 0.0
    urgency: float = 0.0


@dataclass
class Entry:
    id: int
    source: str
    content: str
    salience: float
    posted_turn: int
    read_by: dict[str, int] = field(default_factory=dict)
    broadcast_count: int = 0

    def words(self) -> frozenset[str]:
        return frozenset(_WORD.findall(self.content.lower()))


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class Blackboard:
    name = "blackboard"
    enabled = True

    def __init__(self, *, max_entries: int = 30, max_age_turns: int = 8, threshold: float = 0.4) -> None:
        self.max_entries = max_entries
        self.max_age_turns = max_age_turns
        self.threshold = threshold
        self.entries: dict[int, Entry] = {}
        self.reads: dict[str, dict[str, int]] = {}  # author -> reader -> count
        self.turn = 0
        self._next_id = 1
        self.posted = 0
        self.evicted = 0

    def post(self, source: str, content: str, factors: SalienceFactors, *, profile: str = "default",
             modulation: Mapping[str, float] | None = None) -> Entry:
        words = frozenset(_WORD.findall(content.lower()))
        novelty = 1.0
        for e in self.entries.values():
            overlap = _overlap(words, e.words())
            if e.source == source and overlap >= REPEAT_OVERLAP:
                e.content, e.posted_turn = content, self.turn
                e.salience = max(e.salience, self._salience(0.0, factors, profile, modulation))
                return e
            novelty = min(novelty, 1 - overlap)
        entry = Entry(self._next_id, source, content, self._salience(novelty, factors, profile, modulation), self.turn)
        self._next_id += 1
        self.entries[entry.id] = entry
        self.posted += 1
        self.evict()
        return entry

    @staticmethod
    def _salience(novelty: float, f: SalienceFactors, profile: str, modulation: Mapping[str, float] | None) -> float:
        weights = PROFILES.get(profile, PROFILES["default"])
        values = (novelty, f.uncertainty_reduction, f.goal_relevance, f.urgency)
        m = modulation or {}
        total = sum(w * m.get(name, 1.0) * v for w, name, v in zip(weights, FACTORS, values, strict=True))
        return round(min(1.0, max(0.0, total)), 4)

    def read(self, reader: str, *, limit: int | None = None, source: str | None = None) -> list[Entry]:
        """The most salient entries (optionally from one source), recorded as read by ``reader``."""
        chosen = sorted((e for e in self.entries.values() if source is None or e.source == source),
                        key=lambda e: (-e.salience, -e.id))[:limit]
        for e in chosen:
            e.read_by[reader] = e.read_by.get(reader, 0) + 1
            pair = self.reads.setdefault(e.source, {})
            pair[reader] = pair.get(reader, 0) + 1
        return chosen

    def broadcast(self, reader: str = "context", limit: int = 5) -> list[Entry]:
        """Entries at or above the threshold, as the context sees them."""
        shown = [e for e in self.read(reader, limit=limit) if e.salience >= self.threshold]
        for e in shown:
            e.broadcast_count += 1
        return shown

    def advance_turn(self) -> None:
        self.turn += 1
        self.evict()

    def evict(self) -> int:
        before = len(self.entries)
        self.entries = {i: e for i, e in self.entries.items() if self.turn - e.posted_turn <= self.max_age_turns}
        if len(self.entries) > self.max_entries:
            keep = sorted(self.entries.values(), key=lambda e: (-e.salience, -e.id))[: self.max_entries]
            self.entries = {e.id: e for e in keep}
        gone = before - len(self.entries)
        self.evicted += gone
        return gone

    def dump(self) -> dict[str, Any]:
        return {
            "turn": self.turn, "next_id": self._next_id, "posted": self.posted, "evicted": self.evicted,
            "reads": {a: dict(r) for a, r in self.reads.items()},
            "entries": [{"id": e.id, "source": e.source, "content": e.content, "salience": e.salience,
                         "posted_turn": e.posted_turn, "read_by": dict(e.read_by),
                         "broadcast_count": e.broadcast_count} for e in self.entries.values()],
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self.turn = int(state.get("turn", 0))
        self._next_id = int(state.get("next_id", 1))
        self.posted = int(state.get("posted", 0))
        self.evicted = int(state.get("evicted", 0))
        self.reads = {a: {r: int(n) for r, n in rs.items()} for a, rs in state.get("reads", {}).items()}
        self.entries = {}
        for raw in state.get("entries", []):
            e = Entry(int(raw["id"]), raw["source"], raw["content"], float(raw["salience"]), int(raw["posted_turn"]),
                      dict(raw.get("read_by", {})), int(raw.get("broadcast_count", 0)))
            self.entries[e.id] = e

    def status(self) -> dict[str, Any]:
        top = sorted(self.entries.values(), key=lambda e: (-e.salience, -e.id))[:10]
        return {
            "enabled": True, "entries": len(self.entries), "turn": self.turn, "threshold": self.threshold,
            "posted": self.posted, "evicted": self.evicted,
            "top": [{"id": e.id, "source": e.source, "salience": e.salience, "content": e.content[:200],
                     "reads": sum(e.read_by.values())} for e in top],
        }
