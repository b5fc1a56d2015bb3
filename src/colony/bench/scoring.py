"""Scores: pass@1 per tier, one weighted score (the node's "IQ"), and its confidence interval.

The weighted score gives tier t weight t, so solving a stateful tier-5 program counts five times
a tier-1 one-liner; only tiers present in the run count. The 95% interval comes from a stratified
bootstrap (problems resampled within their tier, fixed seed), so it is reproducible and honest
about how few problems a shard may hold.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel

__all__ = ["TIER_WEIGHTS", "Score", "TierScore", "score"]

TIER_WEIGHTS = {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 5.0}
_RESAMPLES = 1000


class TierScore(BaseModel):
    tier: int
    passed: int
    total: int
    pass_at_1: float


class Score(BaseModel):
    problems: int
    passed: int
    #: Weighted pass@1 in [0, 1]; ``iq`` is the same on a 0-100 scale.
    score: float
    ci_low: float
    ci_high: float
    tiers: list[TierScore]

    @property
    def iq(self) -> float:
        return round(self.score * 100, 1)


def _weighted(by_tier: dict[int, list[bool]]) -> float:
    total_w = sum(TIER_WEIGHTS[t] for t, xs in by_tier.items() if xs)
    if not total_w:
        return 0.0
    return sum(TIER_WEIGHTS[t] * (sum(xs) / len(xs)) for t, xs in by_tier.items() if xs) / total_w


def score(results: Sequence[tuple[int, bool]], *, seed: int = 0) -> Score:
    """Score (tier, passed) pairs."""
    by_tier: dict[int, list[bool]] = defaultdict(list)
    for tier, passed in results:
        by_tier[tier].append(passed)
    point = _weighted(by_tier)
    rng = random.Random(seed)
    samples = sorted(
        _weighted({t: [rng.choice(xs) for _ in xs] for t, xs in by_tier.items()}) for _ in range(_RESAMPLES)
    ) if results else [0.0]
    low = samples[int(0.025 * (len(samples) - 1))]
    high = samples[int(0.975 * (len(samples) - 1))]
    tiers = [TierScore(tier=t, passed=sum(xs), total=len(xs), pass_at_1=round(sum(xs) / len(xs), 4))
             for t, xs in sorted(by_tier.items())]
    return Score(problems=len(results), passed=sum(p for _, p in results), score=round(point, 4),
                 ci_low=round(low, 4), ci_high=round(high, 4), tiers=tiers)
