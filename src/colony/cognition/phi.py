"""Integration proxy (module 8): are the modules actually reading each other?

Computed from the blackboard's read tracking, not from the wiring diagram:

    coupling      = active (author, reader) pairs, author != reader  /  n (n - 1)
    cross-read    = entries read by someone other than their author  /  entries
    entropy       = Shannon entropy of reads across readers, normalised by log(n)
    phi           = 0.35 coupling + 0.35 cross-read + 0.30 entropy

Below 0.3 the modules work in silos and the substrate adds little; the status says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from colony.cognition.blackboard import Entry

__all__ = ["HEALTHY_PHI", "Integration", "PhiMetrics", "compute_phi"]

HEALTHY_PHI = 0.3


class PhiMetrics(BaseModel):
    coupling_score: float
    cross_read_utilization: float
    information_flow_entropy: float
    active_coupling_pairs: int
    total_possible_pairs: int
    phi_proxy: float
    healthy: bool


def compute_phi(reads: Mapping[str, Mapping[str, int]], entries: Iterable[Entry],
                participants: Sequence[str]) -> PhiMetrics:
    n = len(participants)
    members = set(participants)
    possible = n * (n - 1)
    active = sum(1 for author, readers in reads.items() for reader, count in readers.items()
                 if count > 0 and author != reader and author in members and reader in members)
    coupling = active / possible if possible else 0.0
    listed = list(entries)
    cross = sum(1 for e in listed if any(r != e.source and c > 0 for r, c in e.read_by.items()))
    cross_read = cross / len(listed) if listed else 0.0
    per_reader: dict[str, int] = {}
    for readers in reads.values():
        for reader, count in readers.items():
            per_reader[reader] = per_reader.get(reader, 0) + count
    total = sum(per_reader.values())
    entropy = 0.0
    if total and n > 1:
        h = -sum((c / total) * math.log(c / total) for c in per_reader.values() if c)
        entropy = min(1.0, h / math.log(n))
    phi = 0.35 * coupling + 0.35 * cross_read + 0.30 * entropy
    return PhiMetrics(coupling_score=round(coupling, 4), cross_read_utilization=round(cross_read, 4),
                      information_flow_entropy=round(entropy, 4), active_coupling_pairs=active,
                      total_possible_pairs=possible, phi_proxy=round(phi, 4), healthy=phi >= HEALTHY_PHI)


class Integration:
    """Keeps the last phi measurement (the blackboard holds the data it is computed from)."""

    name = "phi"
    enabled = True

    def __init__(self) -> None:
        self.last: PhiMetrics | None = None
        self.history: list[float] = []

    def measure(self, reads: Mapping[str, Mapping[str, int]], entries: Iterable[Entry],
                participants: Sequence[str]) -> PhiMetrics | None:
        self.last = compute_phi(reads, entries, participants)
        self.history = [*self.history[-19:], self.last.phi_proxy]
        return self.last

    def dump(self) -> dict[str, Any]:
        return {"history": self.history}

    def load(self, state: Mapping[str, Any]) -> None:
        self.history = [float(x) for x in state.get("history", [])][-20:]

    def status(self) -> dict[str, Any]:
        return {"enabled": True, **(self.last.model_dump() if self.last else {"phi_proxy": None}),
                "history": self.history}
