"""The substrate: the nine modules (plus the cognitive sphere and the step predictor) as one bundle.

One per node, built from settings, each module replaced by its no-op when switched off. It sits
on two seams and touches nothing else:

- the tool executor's observer list: `before_call` makes a prediction, `after_call` scores it,
  updates beliefs, the predictor and the regime, and posts surprises to the blackboard;
  `requires_approval` and `timeout_multiplier` let the regime and serotonin shape the stack;
- the loop's `CognitionProvider`: `begin_turn` posts perception's risks and the memory graph's
  associations to the blackboard and returns the context block; `tool_budget`, `note_request`,
  `begin_batch`/`end_batch` and `end_turn` do the per-request and per-turn work.

A lock guards the state: the server may run turns of several sessions at once, all of them
feeding the node's one substrate.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from colony.agent.episodes import judge_outcome, judge_sentiment
from colony.agent.perception import Perception
from colony.cognition import _store, speculative, state
from colony.cognition.beliefs import Beliefs
from colony.cognition.blackboard import Blackboard, SalienceFactors
from colony.cognition.holographic import Holographic
from colony.cognition.lessons import Lessons, derive_lesson
from colony.cognition.memory_graph import GraphRecall, RecallSource
from colony.cognition.neuromod import Neuromodulators
from colony.cognition.phi import Integration
from colony.cognition.precision import Precision
from colony.cognition.predictor import StepPredictor
from colony.cognition.protocols import (
    AssociativeMemory,
    BeliefTracker,
    CausalReasoner,
    HolographicStore,
    IntegrationMetric,
    Module,
    Neuromodulator,
    NullBeliefs,
    NullBlackboard,
    NullGraphRecall,
    NullHolographic,
    NullIntegration,
    NullLessons,
    NullNeuromod,
    NullPrecision,
    NullSurprise,
    PrecisionPolicy,
    SurpriseSource,
    Workspace,
)
from colony.cognition.sphere import CognitiveSphere, free_energy
from colony.cognition.surprise import HIGH_SURPRISAL, Prediction, SurpriseTracker
from colony.config import Settings
from colony.errors import ColonyError
from colony.llm.messages import ToolCall
from colony.observability.logs import get_logger
from colony.store import Database
from colony.store.records import open_records
from colony.tools.middleware import ToolResult
from colony.tools.registry import Tool, ToolContext

__all__ = ["MODULES", "PARTICIPANTS", "Substrate", "build_substrate"]

#: Every switchable part, in status order: the nine modules, then the sphere and the predictor.
MODULES = ("surprise", "beliefs", "blackboard", "neuromod", "precision", "memory_graph", "lessons", "phi",
           "holographic", "sphere", "predictor")
#: Who posts to or reads the blackboard: the population the integration proxy is measured over.
PARTICIPANTS = ("perception", "surprise", "beliefs", "neuromod", "precision", "memory_graph", "lessons",
                "holographic", "context")
#: (reader, source) pairs: the modules that act on what another posted read it at turn start.
_READS: tuple[tuple[str, str | None], ...] = (
    ("beliefs", "perception"), ("precision", "surprise"), ("neuromod", "surprise"), ("lessons", "surprise"),
    ("holographic", None),
)
_log = get_logger("colony.cognition")


@dataclass
class _CallToken:
    prediction: Prediction
    features: npt.NDArray[np.float64] | None
    session_id: str | None
    turn_id: str | None


class Substrate:
    """The node's cognitive state and the hooks that feed it."""

    def __init__(self, db: Database, settings: Settings, *, memory: Callable[[], RecallSource] | None = None) -> None:
        self.db = db
        self.settings = settings
        self.disabled = frozenset(settings.cognition_disabled_modules) & set(MODULES)
        on = self.is_on
        self.surprise: SurpriseSource = (SurpriseTracker(settings.cognition_surprise_ema_alpha) if on("surprise")
                                         else NullSurprise())
        self.beliefs: BeliefTracker = Beliefs() if on("beliefs") else NullBeliefs()
        self.blackboard: Workspace = (Blackboard(max_entries=settings.cognition_blackboard_max_entries,
                                                 max_age_turns=settings.cognition_blackboard_max_age_turns,
                                                 threshold=settings.cognition_broadcast_threshold)
                                      if on("blackboard") else NullBlackboard())
        self.neuromod: Neuromodulator = Neuromodulators() if on("neuromod") else NullNeuromod()
        self.precision: PrecisionPolicy = (Precision(energy_tokens=settings.cognition_energy_tokens,
                                                     energy_tool_calls=settings.cognition_energy_tool_calls)
                                           if on("precision") else NullPrecision())
        self.graph: AssociativeMemory = GraphRecall(memory) if on("memory_graph") else NullGraphRecall()
        self.lessons: CausalReasoner = Lessons(db) if on("lessons") else NullLessons()
        self.phi: IntegrationMetric = Integration() if on("phi") else NullIntegration()
        self.holographic: HolographicStore = (Holographic(settings.cognition_hrr_dim) if on("holographic")
                                              else NullHolographic())
        self.sphere = CognitiveSphere() if on("sphere") else None
        self.predictor = StepPredictor() if on("predictor") else None
        self.psi = 0.0  # no colony yet: federation supplies it (`set_colony_psi`) when peers exist
        self.last_batch: dict[str, Any] | None = None
        self._turn_lessons: dict[str, list[int]] = {}
        self._lock = threading.RLock()
        self.restored = state.restore(db, self._stateful())
        self.holographic.sync(self.blackboard.entries.values())
        if self.predictor is not None and self.predictor.seen == 0:
            # Warm start from the calls made before the substrate existed, wherever the node keeps them.
            self.predictor.fit_audit(open_records(db, settings))
        self._reselect()

    def is_on(self, module: str) -> bool:
        return module not in self.disabled

    def _stateful(self) -> list[Module]:
        mods: list[Module] = [self.surprise, self.beliefs, self.blackboard, self.neuromod, self.precision,
                              self.graph, self.lessons, self.phi, self.holographic]
        mods += [m for m in (self.sphere, self.predictor) if m is not None]
        return mods

    def _reselect(self) -> None:
        self.precision.select(self.surprise.ema, self.neuromod.thresholds())

    def _post(self, source: str, content: str, factors: SalienceFactors) -> None:
        entry = self.blackboard.post(source, content, factors, profile=self.precision.regime,
                                     modulation=self.neuromod.salience_modulation())
        if entry is not None:
            self.holographic.add(entry.id, entry.source, entry.content)

    # -- tool executor observer ------------------------------------------------------------------
    def before_call(self, call: ToolCall, ctx: ToolContext, risk: Sequence[str]) -> _CallToken:
        with self._lock:
            belief = self.beliefs.tool(call.name)
            p = belief.reliability
            x = None
            if self.predictor is not None:
                size = len(call.raw_arguments) if call.raw_arguments is not None else len(json.dumps(call.arguments, default=str))
                x = self.predictor.features(call.name, session=ctx.session_id, arg_bytes=size, risky=bool(risk))
                if self.predictor.trained:
                    p = 0.5 * p + 0.5 * self.predictor.predict(x)
            expected_latency = belief.latency_mean_ms if belief.samples else 0.0
            return _CallToken(Prediction(call.name, p, expected_latency, belief.uncertainty), x,
                              ctx.session_id, ctx.turn_id)

    def after_call(self, token: object, result: ToolResult) -> None:
        assert isinstance(token, _CallToken)
        pred, ok = token.prediction, result.outcome == "ok"
        with self._lock:
            s = self.surprise.observe(pred, ok, result.latency_ms)
            self.beliefs.observe(pred.tool, ok, result.latency_ms)
            if self.predictor is not None and token.features is not None:
                self.predictor.learn(token.features, ok, pred.tool, token.session_id)
            self.precision.spend(tool_calls=1)
            self._reselect()
            if s > HIGH_SURPRISAL:
                self._post("surprise", f"Unexpected: {pred.tool} -> {result.outcome} in {result.latency_ms:.0f} ms "
                                       f"(expected success {pred.expected_success:.2f})",
                           SalienceFactors(uncertainty_reduction=s, goal_relevance=0.5, urgency=s))
        if self.surprise.enabled:
            try:
                _store.record_prediction(
                    self.db, session_id=token.session_id, turn_id=token.turn_id, tool=pred.tool,
                    expected_success=round(pred.expected_success, 4), expected_latency_ms=round(pred.expected_latency_ms, 3),
                    uncertainty=round(pred.uncertainty, 4), outcome=result.outcome,
                    latency_ms=round(result.latency_ms, 3), surprisal=round(s, 4))
            except ColonyError as exc:  # the log is for analysis; losing a row must not fail the call
                _log.warning("prediction_not_logged", tool=pred.tool, error=str(exc))

    def requires_approval(self, tool: Tool) -> bool:
        with self._lock:
            return self.precision.requires_approval(tool.effect)

    def timeout_multiplier(self) -> float:
        with self._lock:
            return self.neuromod.timeout_multiplier()

    # -- the loop's provider ---------------------------------------------------------------------
    def begin_turn(self, *, prompt: str, perception: Perception, session_id: str, turn_id: str,
                   tool_names: Sequence[str] = ()) -> str:
        """Per-turn intake (perception, associations, lessons) and the context block for the model."""
        with self._lock:
            self.precision.begin_turn()
            if perception.risk_indicators:
                self._post("perception", "Risk words in the request: " + ", ".join(perception.risk_indicators[:8])
                           + ". Confirm before changing anything.",
                           SalienceFactors(uncertainty_reduction=0.3, goal_relevance=0.7,
                                           urgency=min(1.0, 0.6 + 0.1 * len(perception.risk_indicators))))
            if perception.ambiguity > 0.7:
                self._post("perception", f"The request is ambiguous ({perception.ambiguity:.2f}): ask one "
                                         "clarifying question before acting.",
                           SalienceFactors(uncertainty_reduction=0.8, goal_relevance=0.8, urgency=0.6))
            self.beliefs.nudge_trajectory((0.5 - perception.ambiguity) * 0.2)
            for rank, (_, content, _) in enumerate(self.graph.recall(prompt)):
                self._post("memory_graph", f"Associated memory: {content[:300]}",
                           SalienceFactors(uncertainty_reduction=0.5, goal_relevance=max(0.3, 0.8 - 0.15 * rank)))
            found = self.lessons.retrieve(perception.task_type, prompt)
            if len(self._turn_lessons) > 256:  # turns that never ended (killed, cancelled) leave entries
                self._turn_lessons.clear()
            self._turn_lessons[turn_id] = [lid for lid, _, _ in found]
            for _, text, confidence in found:
                self._post("lessons", text, SalienceFactors(uncertainty_reduction=0.4, goal_relevance=confidence))
            # The modules that act on what others posted read it here; phi measures these reads.
            for reader, source in _READS:
                if self.is_on(reader):
                    self.blackboard.read(reader, source=source, limit=5 if source else None)
            self._reselect()
            return self._context_block(prompt, [text for _, text, _ in found], tool_names)

    def _context_block(self, prompt: str, lessons: Sequence[str], tool_names: Sequence[str]) -> str:
        params = self.precision.params
        lines = [f"[Cognition] regime={self.precision.regime} (advisory model tier {params.model_tier}) "
                 f"confusion={self.surprise.ema:.2f}"]
        levels = self.neuromod.levels()
        if levels:
            lines.append("neuromodulators: " + " ".join(f"{k}={v:.2f}" for k, v in levels.items()))
        beliefs = self.beliefs.summary()
        if beliefs:
            lines.append("beliefs: " + beliefs)
        shown = [e for e in self.blackboard.broadcast("context", max(1, round(params.context_share * 10)))
                 if e.source != "lessons"]
        ids = {e.id for e in shown}
        for entry_id, sim in self.holographic.query(prompt, k=1):  # ambient: one related entry below the cut
            extra = self.blackboard.entries.get(entry_id)
            if extra is not None and entry_id not in ids and sim > 0.3 and extra.source != "lessons":
                shown.append(extra)
        if shown:
            lines.append("workspace:\n" + "\n".join(f"- [{e.source}] {e.content}" for e in shown))
        if lessons:
            lines.append("lessons from earlier failures:\n" + "\n".join(f"- {t}" for t in lessons))
        if self.precision.regime == "explore":
            ranked = self.beliefs.efe(tool_names)
            if ranked:
                lines.append("prefer tools (lowest expected free energy): " + ", ".join(s.tool for s in ranked[:3]))
        if self.precision.regime == "conservative":
            lines.append("conservative mode: tools that change things need approval; prefer reading and asking.")
        if self.precision.budget_critical():
            lines.append("energy nearly spent: finish now, briefly.")
        return "\n".join(lines)

    def tool_budget(self, base: int) -> int:
        with self._lock:
            return self.precision.max_tool_calls(base, self.neuromod.tool_budget_multiplier())

    def note_request(self, tokens: int) -> None:
        with self._lock:
            self.precision.spend(tokens=tokens)

    def begin_batch(self, size: int) -> object | None:
        if size < self.settings.cognition_speculative_min_calls:
            return None
        with self._lock:
            return speculative.fork(self._forkable(), size, self.surprise.ema)

    def end_batch(self, token: object | None, outcomes: Sequence[str]) -> str | None:
        """Judge a batch; returns a notice when the internal state was rolled back."""
        if not isinstance(token, speculative.Fork):
            return None
        with self._lock:
            verdict = speculative.evaluate(
                token, self.surprise.ema, outcomes, max_delta=self.settings.cognition_speculative_surprise_delta_max,
                max_failure_share=self.settings.cognition_speculative_max_failure_share)
            self.last_batch = verdict.model_dump()
            if verdict.resolution == "commit":
                return None
            speculative.rollback(self._forkable(), token)
            self.holographic.sync(self.blackboard.entries.values())
            self._reselect()
        return (f"Rolled back what the agent concluded from a batch of {verdict.size} tool calls ({verdict.reason}); "
                "their effects stay and are recorded.")

    def _forkable(self) -> dict[str, Module]:
        return {"beliefs": self.beliefs, "neuromod": self.neuromod, "blackboard": self.blackboard}

    def end_turn(self, *, prompt: str, perception: Perception, status: str, calls: Sequence[tuple[str, str]],
                 session_id: str, turn_id: str) -> None:
        outcome = judge_outcome(status, [o for _, o in calls])
        with self._lock:
            share = sum(o == "ok" for _, o in calls) / len(calls) if calls else None
            self.neuromod.update(surprisal_ema=self.surprise.ema, trajectory_confidence=self.beliefs.task.trajectory_confidence,
                                 success_share=share, completed=status == "completed")
            self.beliefs.decay_turn()
            self._reselect()
            draft = derive_lesson(task_type=perception.task_type, prompt=prompt, calls=calls, status=status,
                                  sentiment=judge_sentiment(prompt, outcome))
            if draft is not None:
                self.lessons.learn(draft, session_id)
            applied = self._turn_lessons.pop(turn_id, [])
            if applied and outcome == "success":
                self.lessons.reinforce(applied)
            self.blackboard.advance_turn()
            self.holographic.sync(self.blackboard.entries.values())
            self.phi.measure(self.blackboard.reads, self.blackboard.entries.values(), PARTICIPANTS)
            if self.sphere is not None:
                self.sphere.update(free_energy(self.surprise.ema, self.beliefs.task.uncertainty()), self.psi)
            self.save()

    def set_colony_psi(self, value: float) -> float:
        """Take the colony's Psi (federation computes it from the peers) and turn the sphere once.

        Stepping here, not only at the end of a turn, lets an idle node's phi follow its colony;
        each step is still bounded by the sphere's `MAX_STEP`, so phi moves smoothly however often
        or abruptly Psi arrives. Non-finite values count as 0 (no colony). Returns the angle moved.
        """
        with self._lock:
            self.psi = min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0
            if self.sphere is None:
                return 0.0
            return self.sphere.update(free_energy(self.surprise.ema, self.beliefs.task.uncertainty()), self.psi)

    def exclusive(self) -> AbstractContextManager[object]:
        """Hold the substrate's lock: for a capability outside cognition that reads or replaces the
        predictor's weights as a whole (federated averaging), so no tool call's learning step runs
        in between and lands on weights about to be replaced. Re-entrant."""
        return self._lock

    def save(self) -> None:
        with self._lock:
            try:
                state.save(self.db, self._stateful())
            except ColonyError as exc:  # the next turn saves again; the turn itself stands
                _log.warning("cognition_state_not_saved", error=str(exc))

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Every module's state as JSON-ready data (the CLI and the web UI show this)."""
        with self._lock:
            modules: dict[str, Any] = {m.name: m.status() for m in self._stateful()}
            for name in ("sphere", "predictor"):
                modules.setdefault(name, {"enabled": False})
            return {
                "enabled": self.settings.cognition_enabled,
                "disabled_modules": sorted(self.disabled),
                "regime": self.precision.regime,
                "surprisal_ema": round(self.surprise.ema, 4),
                "psi": round(self.psi, 4),
                "restored": self.restored,
                "last_batch": self.last_batch,
                "modules": {name: modules[name] for name in MODULES},
                "prediction_log": [dict(r) for r in _store.prediction_stats(self.db)],
            }


def build_substrate(db: Database, settings: Settings, *, memory: Callable[[], RecallSource] | None = None) -> Substrate:
    return Substrate(db, settings, memory=memory)
