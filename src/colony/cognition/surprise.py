"""Surprise tracker (module 1): a prediction before each tool call, precision-weighted surprisal after.

The expected outcome is a probability of success (from the tool's Beta belief, blended with the
learned step-success predictor when it has seen enough calls) plus an expected latency. After the
call, surprisal is the probability mass the prediction put on what did *not* happen, plus a
latency penalty when the call took more than twice as long as expected, scaled by precision:
a confident prediction that misses surprises more (x1.4), an unsure one less (x0.6). An
exponential moving average of surprisal is the agent's confusion level, the precision
controller's main input.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HIGH_SURPRISAL", "Prediction", "SurpriseTracker", "compute_surprisal", "precision_weight"]

#: Surprisal above this is posted to the blackboard and counted as a high-surprise event.
HIGH_SURPRISAL = 0.5
#: Surprisal never drops below this: even a certain prediction leaves a little to learn.
SURPRISAL_FLOOR = 0.05
#: Starting confusion: the middle of the balanced band, so a fresh node neither rushes nor stalls.
INITIAL_EMA = 0.25
LATENCY_PENALTY = 0.3
LATENCY_RATIO = 2.0


@dataclass(frozen=True)
class Prediction:
    """What the agent expected of one tool call before running it."""

    tool: str
    expected_success: float
    expected_latency_ms: float
    uncertainty: float  # normalised belief uncertainty in [0, 1]


def precision_weight(uncertainty: float) -> float:
    """Confident predictions weigh their errors more; unsure ones are dampened."""
    if uncertainty < 0.3:
        return 1.4
    if uncertainty > 0.7:
        return 0.6
    return 1.0


def compute_surprisal(ok: bool, latency_ms: float, prediction: Prediction) -> float:
    """Precision-weighted surprisal of one outcome, in [SURPRISAL_FLOOR, 1]."""
    p = min(1.0, max(0.0, prediction.expected_success))
    base = SURPRISAL_FLOOR + (1 - SURPRISAL_FLOOR) * ((1 - p) if ok else p)
    if prediction.expected_latency_ms > 0 and latency_ms / prediction.expected_latency_ms > LATENCY_RATIO:
        base += LATENCY_PENALTY
    return max(SURPRISAL_FLOOR, min(1.0, base * precision_weight(prediction.uncertainty)))


class SurpriseTracker:
    """The surprisal EMA and a short window of recent values."""

    name = "surprise"
    enabled = True

    def __init__(self, alpha: float = 0.3) -> None:
        self.alpha = alpha
        self.ema = INITIAL_EMA
        self.count = 0
        self.high_count = 0
        self.recent: deque[float] = deque(maxlen=20)

    def observe(self, prediction: Prediction, ok: bool, latency_ms: float) -> float:
        s = compute_surprisal(ok, latency_ms, prediction)
        self.ema += self.alpha * (s - self.ema)
        self.count += 1
        self.high_count += s > HIGH_SURPRISAL
        self.recent.append(s)
        return s

    def dump(self) -> dict[str, Any]:
        return {"ema": self.ema, "count": self.count, "high_count": self.high_count, "recent": list(self.recent)}

    def load(self, state: Mapping[str, Any]) -> None:
        self.ema = float(state.get("ema", INITIAL_EMA))
        self.count = int(state.get("count", 0))
        self.high_count = int(state.get("high_count", 0))
        self.recent = deque((float(x) for x in state.get("recent", [])), maxlen=20)

    def status(self) -> dict[str, Any]:
        return {
            "enabled": True, "surprisal_ema": round(self.ema, 4), "predictions": self.count,
            "high_surprise_share": round(self.high_count / self.count, 4) if self.count else 0.0,
            "recent": [round(x, 3) for x in self.recent],
        }
