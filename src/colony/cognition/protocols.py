"""One `typing.Protocol` per substrate module, and the no-op implementation of each.

The substrate talks to its modules only through these interfaces, so switching a module off
for an ablation means swapping in its no-op, never an ``if`` in the callers. A no-op is
*neutral*, not absent: the disabled surprise tracker reports the starting confusion level, the
disabled neuromodulators sit at baseline, the disabled precision controller caps nothing. Each
no-op reports ``enabled: False`` in the status so `colony cognition status` stays truthful.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from colony.cognition.beliefs import EFEScore, TaskBelief, ToolBelief
from colony.cognition.blackboard import Entry, SalienceFactors
from colony.cognition.lessons import LessonDraft
from colony.cognition.phi import PhiMetrics
from colony.cognition.precision import REGIMES, Regime, RegimeParams
from colony.cognition.surprise import INITIAL_EMA, Prediction

__all__ = [
    "AssociativeMemory",
    "BeliefTracker",
    "CausalReasoner",
    "HolographicStore",
    "IntegrationMetric",
    "Module",
    "Neuromodulator",
    "NullBeliefs",
    "NullBlackboard",
    "NullGraphRecall",
    "NullHolographic",
    "NullIntegration",
    "NullLessons",
    "NullNeuromod",
    "NullPrecision",
    "NullSurprise",
    "PrecisionPolicy",
    "SurpriseSource",
    "Workspace",
]


class Module(Protocol):
    name: str
    enabled: bool

    def dump(self) -> dict[str, Any]: ...
    def load(self, state: Mapping[str, Any]) -> None: ...
    def status(self) -> dict[str, Any]: ...


class SurpriseSource(Module, Protocol):
    ema: float

    def observe(self, prediction: Prediction, ok: bool, latency_ms: float) -> float: ...


class BeliefTracker(Module, Protocol):
    task: TaskBelief

    def tool(self, name: str) -> ToolBelief: ...
    def observe(self, tool: str, ok: bool, latency_ms: float) -> None: ...
    def nudge_trajectory(self, delta: float) -> None: ...
    def decay_turn(self) -> None: ...
    def efe(self, candidates: Sequence[str]) -> list[EFEScore]: ...
    def summary(self, limit: int = 5) -> str: ...


class Workspace(Module, Protocol):
    threshold: float
    entries: dict[int, Entry]
    reads: dict[str, dict[str, int]]

    def post(self, source: str, content: str, factors: SalienceFactors, *, profile: str = "default",
             modulation: Mapping[str, float] | None = None) -> Entry | None: ...
    def read(self, reader: str, *, limit: int | None = None, source: str | None = None) -> list[Entry]: ...
    def broadcast(self, reader: str = "context", limit: int = 5) -> list[Entry]: ...
    def advance_turn(self) -> None: ...


class Neuromodulator(Module, Protocol):
    def update(self, *, surprisal_ema: float, trajectory_confidence: float, success_share: float | None,
               completed: bool) -> None: ...
    def thresholds(self) -> tuple[float, float, float]: ...
    def tool_budget_multiplier(self) -> float: ...
    def timeout_multiplier(self) -> float: ...
    def salience_modulation(self) -> dict[str, float]: ...
    def levels(self) -> dict[str, float]: ...


class PrecisionPolicy(Module, Protocol):
    regime: Regime

    @property
    def params(self) -> RegimeParams: ...
    def select(self, surprisal_ema: float, thresholds: tuple[float, float, float]) -> Regime: ...
    def begin_turn(self) -> None: ...
    def spend(self, *, tokens: int = 0, tool_calls: int = 0) -> None: ...
    def budget_critical(self) -> bool: ...
    def max_tool_calls(self, base: int, multiplier: float = 1.0) -> int: ...
    def requires_approval(self, effect: str) -> bool: ...


class AssociativeMemory(Module, Protocol):
    def recall(self, query: str) -> list[tuple[int, str, float]]: ...


class CausalReasoner(Module, Protocol):
    def learn(self, draft: LessonDraft, session_id: str | None) -> int: ...
    def retrieve(self, task_type: str, text: str) -> list[tuple[int, str, float]]: ...
    def reinforce(self, lesson_ids: Sequence[int]) -> None: ...


class IntegrationMetric(Module, Protocol):
    def measure(self, reads: Mapping[str, Mapping[str, int]], entries: Iterable[Entry],
                participants: Sequence[str]) -> PhiMetrics | None: ...


class HolographicStore(Module, Protocol):
    def add(self, entry_id: int, source: str, content: str) -> None: ...
    def sync(self, entries: Iterable[Entry]) -> None: ...
    def query(self, text: str, k: int = 3) -> list[tuple[int, float]]: ...
    def capacity(self) -> tuple[int, int]: ...


# -- no-ops -------------------------------------------------------------------------------------
class _Off:
    name = "off"
    enabled = False

    def dump(self) -> dict[str, Any]:
        return {}

    def load(self, state: Mapping[str, Any]) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"enabled": False}


class NullSurprise(_Off):
    name = "surprise"

    def __init__(self) -> None:
        self.ema = INITIAL_EMA

    def observe(self, prediction: Prediction, ok: bool, latency_ms: float) -> float:
        return 0.0


class NullBeliefs(_Off):
    name = "beliefs"

    def __init__(self) -> None:
        self.task = TaskBelief()

    def tool(self, name: str) -> ToolBelief:
        return ToolBelief()

    def observe(self, tool: str, ok: bool, latency_ms: float) -> None:
        return None

    def nudge_trajectory(self, delta: float) -> None:
        return None

    def decay_turn(self) -> None:
        return None

    def efe(self, candidates: Sequence[str]) -> list[EFEScore]:
        return []

    def summary(self, limit: int = 5) -> str:
        return ""


class NullBlackboard(_Off):
    name = "blackboard"
    threshold = 1.0

    def __init__(self) -> None:
        self.entries: dict[int, Entry] = {}
        self.reads: dict[str, dict[str, int]] = {}

    def post(self, source: str, content: str, factors: SalienceFactors, *, profile: str = "default",
             modulation: Mapping[str, float] | None = None) -> Entry | None:
        return None

    def read(self, reader: str, *, limit: int | None = None, source: str | None = None) -> list[Entry]:
        return []

    def broadcast(self, reader: str = "context", limit: int = 5) -> list[Entry]:
        return []

    def advance_turn(self) -> None:
        return None


class NullNeuromod(_Off):
    name = "neuromod"

    def update(self, *, surprisal_ema: float, trajectory_confidence: float, success_share: float | None,
               completed: bool) -> None:
        return None

    def thresholds(self) -> tuple[float, float, float]:
        return 0.15, 0.35, 0.60

    def tool_budget_multiplier(self) -> float:
        return 1.0

    def timeout_multiplier(self) -> float:
        return 1.0

    def salience_modulation(self) -> dict[str, float]:
        return {}

    def levels(self) -> dict[str, float]:
        return {}


class NullPrecision(_Off):
    name = "precision"

    def __init__(self) -> None:
        self.regime: Regime = "balanced"

    @property
    def params(self) -> RegimeParams:
        return REGIMES["balanced"]

    def select(self, surprisal_ema: float, thresholds: tuple[float, float, float]) -> Regime:
        return self.regime

    def begin_turn(self) -> None:
        return None

    def spend(self, *, tokens: int = 0, tool_calls: int = 0) -> None:
        return None

    def budget_critical(self) -> bool:
        return False

    def max_tool_calls(self, base: int, multiplier: float = 1.0) -> int:
        return base

    def requires_approval(self, effect: str) -> bool:
        return False


class NullGraphRecall(_Off):
    name = "memory_graph"

    def recall(self, query: str) -> list[tuple[int, str, float]]:
        return []


class NullLessons(_Off):
    name = "lessons"

    def learn(self, draft: LessonDraft, session_id: str | None) -> int:
        return 0

    def retrieve(self, task_type: str, text: str) -> list[tuple[int, str, float]]:
        return []

    def reinforce(self, lesson_ids: Sequence[int]) -> None:
        return None


class NullIntegration(_Off):
    name = "phi"

    def measure(self, reads: Mapping[str, Mapping[str, int]], entries: Iterable[Entry],
                participants: Sequence[str]) -> PhiMetrics | None:
        return None


class NullHolographic(_Off):
    name = "holographic"

    def add(self, entry_id: int, source: str, content: str) -> None:
        return None

    def sync(self, entries: Iterable[Entry]) -> None:
        return None

    def query(self, text: str, k: int = 3) -> list[tuple[int, float]]:
        return []

    def capacity(self) -> tuple[int, int]:
        return 0, 0
