"""Psi(t): how much the colony is acting as one mind, from what its peers report.

Psi = (Intelligence x Sync x Diversity x Velocity)^(1/4) (`colony.cognition.sphere.psi`), each factor
in [0, 1], computed from a list of `PeerState` (this node included). The definitions:

- **Intelligence**: the mean over peers of their benchmark score or pass rate. A peer that reports
  none, or a non-finite one, counts 0 (it is a member contributing nothing measurable yet); finite
  scores are clipped to [0, 1].
- **Sync**: the mean over peers of ``2 ** -lag * max(0, cos(w, w_canonical))``, where ``lag`` is how
  many rounds the peer's predictor is behind the canonical round (one behind counts half) and the
  cosine compares its parameter vector with the canonical one (left out, i.e. 1, when either is
  unknown). A peer with no round, a negative one, or weights of the wrong length or non-finite
  counts 0. Without a canonical round the newest round any peer reports stands in for it.
- **Diversity**: the mean over pairs of peers of the Jaccard distance between their agents'
  skill sets, ``1 - |A & B| / |A | B|``. Nodes with identical skills are redundant (0), disjoint
  ones complementary (1); a pair where either side has no skills counts 0. A single node has no
  pairs, so Diversity = 0 and Psi = 0: a colony of one is not a colony, and the sphere stays at
  "self".
- **Velocity**: each peer's least-squares slope of score against time, in score per hour (needs
  two finite points at least `MIN_SPAN_S` apart); the mean slope ``r`` over peers that have one is
  squashed as ``(1 + tanh(r / VELOCITY_SCALE)) / 2``: 0.5 when the colony stands still, toward 1
  when it improves by several points an hour, toward 0 when it gets worse. With no slope at all
  Velocity is the neutral 0.5 (no evidence either way).

An empty list gives all four factors 0. `PsiSeries` keeps the readings over time for the UI; it
is a cognition `Module` (``dump``/``load``), persisted in the cognition store with
`colony.cognition.state.save` / ``restore`` under the name ``colony_psi``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from colony.cognition.sphere import psi as combine

__all__ = [
    "MIN_SPAN_S",
    "VELOCITY_SCALE",
    "PeerState",
    "PsiReading",
    "PsiSeries",
    "colony_psi",
    "diversity",
    "intelligence",
    "rate_per_hour",
    "sync",
    "velocity",
]

VELOCITY_SCALE = 0.05  # score per hour that counts as fast: tanh(1) ~ 0.76 -> Velocity ~ 0.88
MIN_SPAN_S = 60.0      # a slope over less than a minute is noise, not a trend


@dataclass(frozen=True)
class PeerState:
    """What one node reports about itself (the transport fills it from the peer's signed status)."""

    node: str
    score: float | None = None
    weights_round: int | None = None
    weights: tuple[float, ...] | None = None
    skills: frozenset[str] = frozenset()
    history: tuple[tuple[float, float], ...] = ()  # (unix seconds, score), any order


@dataclass(frozen=True)
class PsiReading:
    intelligence: float
    sync: float
    diversity: float
    velocity: float
    psi: float
    nodes: int

    def as_dict(self) -> dict[str, float | int]:
        return {"psi": self.psi, "intelligence": self.intelligence, "sync": self.sync,
                "diversity": self.diversity, "velocity": self.velocity, "nodes": self.nodes}


def _unit(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return min(1.0, max(0.0, float(value)))


def intelligence(peers: Sequence[PeerState]) -> float:
    if not peers:
        return 0.0
    return sum(_unit(p.score) or 0.0 for p in peers) / len(peers)


def _cosine(a: tuple[float, ...], b: np.ndarray[Any, np.dtype[np.float64]]) -> float:
    v = np.asarray(a, dtype=float)
    if v.shape != b.shape or not np.all(np.isfinite(v)):
        return 0.0
    norms = float(np.linalg.norm(v) * np.linalg.norm(b))
    return max(0.0, float(v @ b) / norms) if norms > 0 else 0.0


def sync(peers: Sequence[PeerState], *, canonical_round: int | None = None,
         canonical: Sequence[float] | None = None) -> float:
    if not peers:
        return 0.0
    rounds = [p.weights_round for p in peers if p.weights_round is not None and p.weights_round >= 0]
    latest = canonical_round if canonical_round is not None and canonical_round >= 0 else max(rounds, default=None)
    if latest is None:
        return 0.0
    ref = np.asarray(canonical, dtype=float) if canonical is not None else None
    if ref is not None and (ref.ndim != 1 or not np.all(np.isfinite(ref))):
        ref = None  # an unusable reference says nothing about anyone's weights
    total = 0.0
    for p in peers:
        if p.weights_round is None or p.weights_round < 0:
            continue
        term = 2.0 ** -min(64, abs(latest - p.weights_round))
        if p.weights is not None and ref is not None:
            term *= _cosine(p.weights, ref)
        total += term
    return total / len(peers)


def diversity(peers: Sequence[PeerState]) -> float:
    pairs = list(combinations(peers, 2))
    if not pairs:
        return 0.0
    total = 0.0
    for a, b in pairs:
        if a.skills and b.skills:
            total += 1.0 - len(a.skills & b.skills) / len(a.skills | b.skills)
    return total / len(pairs)


def rate_per_hour(history: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of score over time, per hour; None without two finite points far enough apart."""
    points = [(t, s) for t, s in history if math.isfinite(t) and math.isfinite(s)]
    if len(points) < 2:
        return None
    ts = np.array([t for t, _ in points]) / 3600.0
    ys = np.array([min(1.0, max(0.0, s)) for _, s in points])
    if (ts.max() - ts.min()) * 3600.0 < MIN_SPAN_S:
        return None
    dt = ts - ts.mean()
    return float(dt @ (ys - ys.mean()) / (dt @ dt))


def velocity(peers: Sequence[PeerState], *, scale: float = VELOCITY_SCALE) -> float:
    if not peers:
        return 0.0
    rates = [r for r in (rate_per_hour(p.history) for p in peers) if r is not None]
    if not rates:
        return 0.5
    return 0.5 * (1.0 + math.tanh(sum(rates) / len(rates) / scale))


def colony_psi(peers: Sequence[PeerState], *, canonical_round: int | None = None,
               canonical: Sequence[float] | None = None) -> PsiReading:
    """All four factors and Psi for ``peers`` (this node included)."""
    i, s = intelligence(peers), sync(peers, canonical_round=canonical_round, canonical=canonical)
    d, v = diversity(peers), velocity(peers)
    return PsiReading(intelligence=i, sync=s, diversity=d, velocity=v, psi=combine(i, s, d, v), nodes=len(peers))


@dataclass
class PsiSeries:
    """Psi over time, newest last: at most ``maxlen`` readings, at least ``min_interval_s`` apart.

    A reading older than the newest one kept is refused (clocks that step back would draw the
    line backwards); one that comes sooner than ``min_interval_s`` after it is dropped, so a busy
    gossip loop cannot flood the store.
    """

    maxlen: int = 1440
    min_interval_s: float = 30.0
    name: str = "colony_psi"
    enabled: bool = True
    _rows: deque[tuple[float, PsiReading]] = field(default_factory=deque)

    def record(self, at: float, reading: PsiReading) -> bool:
        if not math.isfinite(at) or not all(math.isfinite(x) for x in
                                            (reading.psi, reading.intelligence, reading.sync,
                                             reading.diversity, reading.velocity)):
            return False
        if self._rows and at < self._rows[-1][0] + self.min_interval_s:
            return False
        self._rows.append((at, reading))
        while len(self._rows) > self.maxlen:
            self._rows.popleft()
        return True

    def samples(self, since: float | None = None) -> list[dict[str, float | int]]:
        return [{"at": t, **r.as_dict()} for t, r in self._rows if since is None or t >= since]

    @property
    def latest(self) -> PsiReading | None:
        return self._rows[-1][1] if self._rows else None

    def dump(self) -> dict[str, Any]:
        return {"rows": [[t, r.psi, r.intelligence, r.sync, r.diversity, r.velocity, r.nodes]
                         for t, r in self._rows]}

    def load(self, state: Mapping[str, Any]) -> None:
        """Keep the rows that parse (finite, in [0, 1], in time order); drop the rest."""
        self._rows.clear()
        for row in state.get("rows", []):
            if not isinstance(row, list) or len(row) != 7:
                continue
            try:
                at, values, nodes = float(row[0]), [float(x) for x in row[1:6]], int(row[6])
            except (TypeError, ValueError):
                continue
            if not all(math.isfinite(x) and 0.0 <= x <= 1.0 for x in values) or nodes < 0:
                continue
            if not math.isfinite(at) or (self._rows and at < self._rows[-1][0]):
                continue
            p, i, s, d, v = values
            self._rows.append((at, PsiReading(intelligence=i, sync=s, diversity=d, velocity=v, psi=p, nodes=nodes)))
        while len(self._rows) > self.maxlen:
            self._rows.popleft()

    def status(self) -> dict[str, Any]:
        latest = self.latest
        return {"enabled": True, "samples": len(self._rows),
                "latest": None if latest is None else {k: round(x, 4) if isinstance(x, float) else x
                                                       for k, x in latest.as_dict().items()}}
