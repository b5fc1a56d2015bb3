"""Belief state (module 2): how far the agent trusts each tool and its own trajectory.

Per tool, a Beta(alpha, beta) distribution over reliability (successes + 1, failures + 1: the
conjugate prior of a success/failure process) with a running latency mean and variance. Per task,
a trajectory confidence that rises with successes and falls with failures or ambiguous input,
and a model freshness that decays each turn without new observations. Expected free energy
ranks candidate tools: ambiguity (belief variance) plus risk (unreliability weighted by latency)
minus pragmatic value (reliability of a fast tool). Lower is better.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel

__all__ = ["Beliefs", "EFEScore", "TaskBelief", "ToolBelief"]

#: Variance of Beta(1, 1), the largest a Beta belief can have: divides variance into [0, 1].
_MAX_BETA_VARIANCE = 1 / 12
FRESHNESS_DECAY = 0.9
SUCCESS_STEP, FAILURE_STEP = 0.05, 0.1


@dataclass
class ToolBelief:
    alpha: float = 1.0
    beta: float = 1.0
    latency_mean_ms: float = 0.0
    latency_m2: float = 0.0  # Welford's running sum of squared deviations
    samples: int = 0

    @property
    def reliability(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def variance(self) -> float:
        n = self.alpha + self.beta
        return (self.alpha * self.beta) / (n * n * (n + 1.0))

    @property
    def uncertainty(self) -> float:
        """Variance scaled to [0, 1] (1 = nothing known yet)."""
        return min(1.0, self.variance / _MAX_BETA_VARIANCE)

    @property
    def latency_var_ms(self) -> float:
        return self.latency_m2 / (self.samples - 1) if self.samples > 1 else 0.0

    def update(self, ok: bool, latency_ms: float) -> None:
        if ok:
            self.alpha += 1
        else:
            self.beta += 1
        self.samples += 1
        delta = latency_ms - self.latency_mean_ms
        self.latency_mean_ms += delta / self.samples
        self.latency_m2 += delta * (latency_ms - self.latency_mean_ms)


@dataclass
class TaskBelief:
    trajectory_confidence: float = 0.7
    model_freshness: float = 1.0
    streak_successes: int = 0
    streak_failures: int = 0

    def uncertainty(self) -> float:
        return 1.0 - (self.trajectory_confidence * 0.6 + self.model_freshness * 0.4)


class EFEScore(BaseModel):
    tool: str
    ambiguity: float
    risk: float
    pragmatic_value: float
    g: float


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


class Beliefs:
    name = "beliefs"
    enabled = True

    def __init__(self) -> None:
        self.tools: dict[str, ToolBelief] = {}
        self.task = TaskBelief()

    def tool(self, name: str) -> ToolBelief:
        return self.tools.get(name) or ToolBelief()

    def observe(self, tool: str, ok: bool, latency_ms: float) -> None:
        self.tools.setdefault(tool, ToolBelief()).update(ok, latency_ms)
        t = self.task
        if ok:
            t.streak_successes, t.streak_failures = t.streak_successes + 1, 0
            t.trajectory_confidence = _clip(t.trajectory_confidence + SUCCESS_STEP)
        else:
            t.streak_successes, t.streak_failures = 0, t.streak_failures + 1
            t.trajectory_confidence = _clip(t.trajectory_confidence - FAILURE_STEP)
        t.model_freshness = _clip(t.model_freshness + 0.2)

    def nudge_trajectory(self, delta: float) -> None:
        self.task.trajectory_confidence = _clip(self.task.trajectory_confidence + delta)

    def decay_turn(self) -> None:
        self.task.model_freshness *= FRESHNESS_DECAY

    def efe(self, candidates: Sequence[str]) -> list[EFEScore]:
        """Candidate tools by expected free energy, best (lowest g) first."""
        beliefs = {c: self.tool(c) for c in candidates}
        slowest = max((b.latency_mean_ms for b in beliefs.values()), default=0.0) or 1.0
        scores = []
        for name, b in beliefs.items():
            norm_latency = b.latency_mean_ms / slowest
            ambiguity = b.uncertainty
            risk = (1 - b.reliability) * norm_latency
            pragmatic = b.reliability * (1 - norm_latency)
            scores.append(EFEScore(tool=name, ambiguity=round(ambiguity, 4), risk=round(risk, 4),
                                   pragmatic_value=round(pragmatic, 4), g=round(ambiguity + risk - pragmatic, 4)))
        return sorted(scores, key=lambda s: (s.g, s.tool))

    def summary(self, limit: int = 5) -> str:
        """One line for the context: the least reliable tools seen, and the task confidence."""
        seen = sorted(((n, b) for n, b in self.tools.items() if b.samples), key=lambda nb: nb[1].reliability)[:limit]
        tools = ", ".join(f"{n} {b.reliability:.2f}" for n, b in seen)
        line = f"trajectory confidence {self.task.trajectory_confidence:.2f}"
        return f"{line}; tool reliability: {tools}" if tools else line

    def dump(self) -> dict[str, Any]:
        return {"tools": {n: asdict(b) for n, b in self.tools.items()}, "task": asdict(self.task)}

    def load(self, state: Mapping[str, Any]) -> None:
        self.tools = {n: ToolBelief(**b) for n, b in state.get("tools", {}).items()}
        self.task = TaskBelief(**state.get("task", {}))

    def status(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "task": {**asdict(self.task), "uncertainty": round(self.task.uncertainty(), 4)},
            "tools": {n: {"reliability": round(b.reliability, 4), "uncertainty": round(b.uncertainty, 4),
                          "latency_mean_ms": round(b.latency_mean_ms, 3),
                          "latency_var_ms": round(b.latency_var_ms, 3), "samples": b.samples}
                      for n, b in sorted(self.tools.items())},
        }
