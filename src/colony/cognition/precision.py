"""Precision controller (module 5): how much effort the next steps deserve.

The regime follows the surprisal EMA across thresholds that noradrenaline shifts:

    EMA < exploit         exploit       fast tier       3 tool calls   lean context
    < explore             balanced      standard tier   5              normal
    < conservative        explore       capable tier    8              rich context, EFE ranking
    above                 conservative  capable tier    4              approval on for write tools

Serotonin scales the regime's tool calls. An energy budget per turn (tokens and tool calls)
overrides everything when less than a tenth of either is left: no more tools, answer briefly.
The model tier is advisory (shown in the status and the context); the cascade picks providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["REGIMES", "Precision", "Regime", "RegimeParams"]

Regime = Literal["exploit", "balanced", "explore", "conservative"]
CRITICAL_SHARE = 0.1
_GUARDED_EFFECTS = frozenset({"write", "execute", "network"})


@dataclass(frozen=True)
class RegimeParams:
    model_tier: Literal["fast", "standard", "capable"]
    max_tool_calls: int
    context_share: float  # share of the blackboard broadcast shown (of up to ten entries)


REGIMES: dict[Regime, RegimeParams] = {
    "exploit": RegimeParams("fast", 3, 0.2),
    "balanced": RegimeParams("standard", 5, 0.35),
    "explore": RegimeParams("capable", 8, 0.5),
    "conservative": RegimeParams("capable", 4, 0.3),
}


class Precision:
    name = "precision"
    enabled = True

    def __init__(self, *, energy_tokens: int = 120_000, energy_tool_calls: int = 24) -> None:
        self.regime: Regime = "balanced"
        self.energy_tokens = energy_tokens
        self.energy_tool_calls = energy_tool_calls
        self.tokens_spent = 0
        self.tool_calls_spent = 0
        self.transitions = 0

    def select(self, surprisal_ema: float, thresholds: tuple[float, float, float]) -> Regime:
        exploit, explore, conservative = thresholds
        regime: Regime
        if surprisal_ema < exploit:
            regime = "exploit"
        elif surprisal_ema < explore:
            regime = "balanced"
        elif surprisal_ema < conservative:
            regime = "explore"
        else:
            regime = "conservative"
        self.transitions += regime != self.regime
        self.regime = regime
        return regime

    @property
    def params(self) -> RegimeParams:
        return REGIMES[self.regime]

    def begin_turn(self) -> None:
        self.tokens_spent = self.tool_calls_spent = 0

    def spend(self, *, tokens: int = 0, tool_calls: int = 0) -> None:
        self.tokens_spent += tokens
        self.tool_calls_spent += tool_calls

    def budget_critical(self) -> bool:
        return (self.energy_tokens - self.tokens_spent < CRITICAL_SHARE * self.energy_tokens
                or self.energy_tool_calls - self.tool_calls_spent < CRITICAL_SHARE * self.energy_tool_calls)

    def max_tool_calls(self, base: int, multiplier: float = 1.0) -> int:
        """Tool calls allowed this turn: the regime's (scaled) cap, never above ``base``."""
        if self.budget_critical():
            return min(base, self.tool_calls_spent)
        return min(base, max(1, int(self.params.max_tool_calls * multiplier)))

    def requires_approval(self, effect: str) -> bool:
        """In the conservative regime every tool that changes something asks a person first."""
        return self.regime == "conservative" and effect in _GUARDED_EFFECTS

    def dump(self) -> dict[str, Any]:
        return {"regime": self.regime, "transitions": self.transitions, "tokens_spent": self.tokens_spent,
                "tool_calls_spent": self.tool_calls_spent}

    def load(self, state: Mapping[str, Any]) -> None:
        regime = state.get("regime", "balanced")
        self.regime = regime if regime in REGIMES else "balanced"
        self.transitions = int(state.get("transitions", 0))
        self.tokens_spent = int(state.get("tokens_spent", 0))  # the last turn's spend, until the next begins
        self.tool_calls_spent = int(state.get("tool_calls_spent", 0))

    def status(self) -> dict[str, Any]:
        p = self.params
        return {
            "enabled": True, "regime": self.regime, "model_tier": p.model_tier,
            "max_tool_calls": p.max_tool_calls, "context_share": p.context_share,
            "transitions": self.transitions, "budget_critical": self.budget_critical(),
            "energy": {"tokens": self.energy_tokens, "tokens_spent": self.tokens_spent,
                       "tool_calls": self.energy_tool_calls, "tool_calls_spent": self.tool_calls_spent},
        }
