"""Neuromodulation (module 4): three global gains updated per turn and decaying to baseline.

- Dopamine follows the turn's reward (share of successful tool calls, a completed turn) and
  scales goal relevance on the blackboard.
- Noradrenaline falls as surprisal rises: low noradrenaline widens exploration (the explore
  threshold drops, novelty weighs more); high noradrenaline tightens exploitation.
- Serotonin follows trajectory confidence: a confident agent is patient (more tool calls,
  longer timeouts), an unsure one keeps actions short.

Each level moves part of the way to its target per turn, then relaxes toward the baseline of
1.0, and stays in [0.1, 2.0]: bounded gains cannot run away however odd the inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["LEVEL_MAX", "LEVEL_MIN", "Neuromodulators"]

LEVEL_MIN, LEVEL_MAX, BASELINE = 0.1, 2.0, 1.0
RATE = 0.5  # share of the distance to the target moved per turn
DECAY = 0.9  # share of the deviation from baseline kept per turn
EXPLOIT_BASE, EXPLORE_BASE, CONSERVATIVE_BASE = 0.15, 0.35, 0.60


def _clip(x: float) -> float:
    return min(LEVEL_MAX, max(LEVEL_MIN, x))


class Neuromodulators:
    name = "neuromod"
    enabled = True

    def __init__(self) -> None:
        self.dopamine = self.noradrenaline = self.serotonin = BASELINE

    def update(self, *, surprisal_ema: float, trajectory_confidence: float, success_share: float | None,
               completed: bool) -> None:
        reward = (success_share if success_share is not None else 0.5) * 0.7 + (0.3 if completed else 0.0)
        targets = {
            "dopamine": BASELINE + 2 * (reward - 0.5),
            "noradrenaline": BASELINE + 3 * (EXPLORE_BASE - 0.1 - surprisal_ema),
            "serotonin": 0.5 + trajectory_confidence,
        }
        for name, target in targets.items():
            level = getattr(self, name)
            level += RATE * (_clip(target) - level)
            setattr(self, name, _clip(BASELINE + DECAY * (level - BASELINE)))

    def thresholds(self) -> tuple[float, float, float]:
        """(exploit, explore, conservative) surprisal thresholds, shifted by noradrenaline."""
        na = self.noradrenaline
        exploit = min(0.3, max(0.05, EXPLOIT_BASE * na))
        explore = min(0.5, max(exploit + 0.05, EXPLORE_BASE + 0.1 * (na - 1)))
        return exploit, explore, CONSERVATIVE_BASE

    def tool_budget_multiplier(self) -> float:
        return min(1.5, max(0.5, self.serotonin))

    def timeout_multiplier(self) -> float:
        return min(1.5, max(0.5, self.serotonin))

    def salience_modulation(self) -> dict[str, float]:
        return {
            "novelty": 2.0 - self.noradrenaline if self.noradrenaline < 1 else 1.0,
            "uncertainty_reduction": 1.0,
            "goal_relevance": self.dopamine,
            "urgency": max(1.0, self.noradrenaline),
        }

    def levels(self) -> dict[str, float]:
        return {"dopamine": round(self.dopamine, 4), "noradrenaline": round(self.noradrenaline, 4),
                "serotonin": round(self.serotonin, 4)}

    def dump(self) -> dict[str, Any]:
        return {"dopamine": self.dopamine, "noradrenaline": self.noradrenaline, "serotonin": self.serotonin}

    def load(self, state: Mapping[str, Any]) -> None:
        for name in ("dopamine", "noradrenaline", "serotonin"):
            setattr(self, name, _clip(float(state.get(name, BASELINE))))

    def status(self) -> dict[str, Any]:
        exploit, explore, conservative = self.thresholds()
        return {"enabled": True, **self.levels(),
                "thresholds": {"exploit": round(exploit, 4), "explore": round(explore, 4),
                               "conservative": conservative},
                "tool_budget_multiplier": round(self.tool_budget_multiplier(), 4),
                "timeout_multiplier": round(self.timeout_multiplier(), 4)}
