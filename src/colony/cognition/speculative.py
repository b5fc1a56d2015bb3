"""Speculative batches: when the model asks for three or more tool calls at once.

Before the batch, the substrate's beliefs, neuromodulators and blackboard are snapshotted.
After it, the batch is judged: if the surprisal EMA rose by more than the allowed delta
(``max(0, ema_now - ema_at_fork)``), or too large a share of the calls failed, the internal
state is rolled back to the snapshot -- the batch taught the agent something misleading.
External effects are *not* undone (a written file stays written) and every call stays in the
audit log and the prediction log; only what the agent concluded from the batch is discarded.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from colony.cognition.protocols import Module

__all__ = ["BatchVerdict", "Fork", "evaluate", "fork", "rollback"]


@dataclass(frozen=True)
class Fork:
    size: int
    ema_at_fork: float
    states: dict[str, dict[str, Any]]


class BatchVerdict(BaseModel):
    size: int
    resolution: Literal["commit", "rollback"]
    surprisal_ema_delta: float
    failure_share: float
    reason: str


def fork(modules: Mapping[str, Module], size: int, ema: float) -> Fork:
    return Fork(size, ema, {name: copy.deepcopy(m.dump()) for name, m in modules.items() if m.enabled})


def evaluate(f: Fork, ema_now: float, outcomes: Sequence[str], *, max_delta: float,
             max_failure_share: float) -> BatchVerdict:
    delta = max(0.0, ema_now - f.ema_at_fork)
    failures = sum(o != "ok" for o in outcomes)
    share = failures / len(outcomes) if outcomes else 0.0
    reasons = []
    if delta > max_delta:
        reasons.append(f"surprisal rose by {delta:.2f} (limit {max_delta:.2f})")
    if share > max_failure_share:
        reasons.append(f"{failures} of {len(outcomes)} calls failed")
    return BatchVerdict(size=f.size, resolution="rollback" if reasons else "commit",
                        surprisal_ema_delta=round(delta, 4), failure_share=round(share, 4),
                        reason="; ".join(reasons) or "within limits")


def rollback(modules: Mapping[str, Module], f: Fork) -> None:
    for name, state in f.states.items():
        modules[name].load(state)
