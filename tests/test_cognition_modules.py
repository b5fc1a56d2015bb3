"""The substrate's modules one by one: formulas against hand-computed values, bounds, persistence."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from colony.cognition import _store
from colony.cognition.beliefs import Beliefs, ToolBelief
from colony.cognition.blackboard import PROFILES, Blackboard, SalienceFactors
from colony.cognition.holographic import CAPACITY_PER_DIM, Holographic
from colony.cognition.lessons import Lessons, derive_lesson
from colony.cognition.neuromod import LEVEL_MAX, LEVEL_MIN, Neuromodulators
from colony.cognition.phi import compute_phi
from colony.cognition.precision import Precision
from colony.cognition.predictor import StepPredictor, prequential
from colony.cognition.protocols import (
    AssociativeMemory,
    BeliefTracker,
    CausalReasoner,
    HolographicStore,
    IntegrationMetric,
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
from colony.cognition.sphere import MAX_STEP, CognitiveSphere, angular_distance, free_energy, psi
from colony.cognition.surprise import Prediction, SurpriseTracker, compute_surprisal, precision_weight
from colony.store import Database, open_database
from colony.store.audit import ToolCallRecord
from colony.store.sqlite_records import SqliteRecordStore


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = open_database(tmp_path / "cog.db")
    yield d  # type: ignore[misc]
    d.close()


# -- surprise ---------------------------------------------------------------------------------------
def test_surprisal_matches_hand_computed_values() -> None:
    confident = Prediction("t", expected_success=0.9, expected_latency_ms=100, uncertainty=0.2)
    assert compute_surprisal(True, 100, confident) == pytest.approx((0.05 + 0.95 * 0.1) * 1.4)
    assert compute_surprisal(False, 100, confident) == 1.0  # 0.905 x 1.4 is clipped
    unsure = Prediction("t", expected_success=0.5, expected_latency_ms=100, uncertainty=0.9)
    assert compute_surprisal(True, 100, unsure) == pytest.approx((0.05 + 0.95 * 0.5) * 0.6)
    # More than twice the expected latency adds 0.3 before weighting.
    assert compute_surprisal(True, 250, unsure) == pytest.approx((0.05 + 0.95 * 0.5 + 0.3) * 0.6)
    assert [precision_weight(u) for u in (0.1, 0.5, 0.8)] == [1.4, 1.0, 0.6]


def test_surprise_ema_follows_alpha_and_survives_dump_load() -> None:
    tracker = SurpriseTracker(alpha=0.5)
    p = Prediction("t", 0.5, 0.0, 0.5)
    s = tracker.observe(p, False, 1.0)
    assert tracker.ema == pytest.approx(0.25 + 0.5 * (s - 0.25))
    again = SurpriseTracker()
    again.load(tracker.dump())
    assert again.ema == tracker.ema and again.count == 1 and again.high_count == 1


# -- beliefs ----------------------------------------------------------------------------------------
def test_beta_belief_and_welford_latency() -> None:
    b = ToolBelief()
    latencies = [10.0, 30.0, 20.0, 60.0]
    for ok, lat in zip([True, True, False, True], latencies, strict=True):
        b.update(ok, lat)
    assert (b.alpha, b.beta) == (4.0, 2.0)
    assert b.reliability == pytest.approx(4 / 6)
    assert b.variance == pytest.approx(4 * 2 / (36 * 7))
    assert b.latency_mean_ms == pytest.approx(statistics.mean(latencies))
    assert b.latency_var_ms == pytest.approx(statistics.variance(latencies))
    assert ToolBelief().uncertainty == pytest.approx(1.0)


def test_efe_prefers_reliable_fast_tools_and_trajectory_moves() -> None:
    beliefs = Beliefs()
    for _ in range(8):
        beliefs.observe("fast_ok", True, 5.0)
        beliefs.observe("slow_flaky", False, 500.0)
    ranked = beliefs.efe(["slow_flaky", "fast_ok", "never_seen"])
    assert ranked[0].tool == "fast_ok"
    assert ranked[-1].tool in {"slow_flaky", "never_seen"}
    assert beliefs.task.streak_failures == 1
    before = beliefs.task.trajectory_confidence
    beliefs.nudge_trajectory(-0.2)
    assert beliefs.task.trajectory_confidence == pytest.approx(before - 0.2)
    freshness = beliefs.task.model_freshness
    beliefs.decay_turn()
    assert beliefs.task.model_freshness == pytest.approx(freshness * 0.9)
    copy = Beliefs()
    copy.load(beliefs.dump())
    assert copy.tool("fast_ok").reliability == beliefs.tool("fast_ok").reliability
    assert "slow_flaky" in beliefs.summary()


# -- blackboard -------------------------------------------------------------------------------------
def test_salience_is_weighted_sum_under_profile_and_modulation() -> None:
    board = Blackboard(threshold=0.4)
    f = SalienceFactors(uncertainty_reduction=0.5, goal_relevance=1.0, urgency=0.0)
    e = board.post("surprise", "tool x failed", f, profile="exploit")
    w = PROFILES["exploit"]
    assert e.salience == pytest.approx(w[0] * 1.0 + w[1] * 0.5 + w[2] * 1.0, abs=1e-4)
    e2 = board.post("lessons", "a different lesson entirely", f, profile="default", modulation={"goal_relevance": 0.5})
    w = PROFILES["default"]
    assert e2.salience == pytest.approx(w[0] * 1.0 + w[1] * 0.5 + w[2] * 0.5, abs=1e-4)


def test_repeats_refresh_eviction_reads_and_broadcast() -> None:
    board = Blackboard(max_entries=3, max_age_turns=2, threshold=0.4)
    first = board.post("surprise", "read_file failed on notes.txt", SalienceFactors(urgency=1.0))
    same = board.post("surprise", "read_file failed on notes.txt", SalienceFactors(urgency=1.0))
    assert same.id == first.id and len(board.entries) == 1
    low = board.post("perception", "minor detail", SalienceFactors())
    assert low.salience < 0.4
    shown = board.broadcast("context")
    assert [e.id for e in shown] == [first.id]  # only entries at or above the threshold
    assert board.reads["surprise"]["context"] == 1 and board.reads["perception"]["context"] == 1
    for i in range(4):
        board.post("memory_graph", f"distinct fact number {i} about zebras{i}", SalienceFactors(goal_relevance=i / 4))
    assert len(board.entries) == 3  # capacity: the least salient went first
    for _ in range(3):
        board.advance_turn()
    assert board.entries == {}  # older than max_age_turns
    restored = Blackboard()
    restored.load(board.dump())
    assert restored.reads == board.reads and restored.evicted == board.evicted


# -- neuromodulation and precision -------------------------------------------------------------------
@given(hs.floats(0, 1), hs.floats(0, 1), hs.one_of(hs.none(), hs.floats(0, 1)), hs.booleans())
def test_neuromodulators_stay_in_bounds(ema: float, conf: float, share: float | None, done: bool) -> None:
    n = Neuromodulators()
    for _ in range(30):
        n.update(surprisal_ema=ema, trajectory_confidence=conf, success_share=share, completed=done)
    for level in n.levels().values():
        assert LEVEL_MIN <= level <= LEVEL_MAX
    exploit, explore, conservative = n.thresholds()
    assert exploit < explore < conservative


def test_surprise_lowers_noradrenaline_and_widens_exploration() -> None:
    calm, alarmed = Neuromodulators(), Neuromodulators()
    for _ in range(5):
        calm.update(surprisal_ema=0.05, trajectory_confidence=0.9, success_share=1.0, completed=True)
        alarmed.update(surprisal_ema=0.8, trajectory_confidence=0.2, success_share=0.0, completed=False)
    assert alarmed.noradrenaline < 1.0 < calm.noradrenaline
    assert alarmed.thresholds()[1] < calm.thresholds()[1]
    assert alarmed.dopamine < 1.0 < calm.dopamine
    assert alarmed.tool_budget_multiplier() < calm.tool_budget_multiplier()
    # Neutral input relaxes back toward baseline.
    for _ in range(60):
        alarmed.update(surprisal_ema=0.25, trajectory_confidence=0.5, success_share=None, completed=False)
    assert alarmed.noradrenaline == pytest.approx(1.0, abs=0.02)


def test_regimes_budget_and_approval() -> None:
    p = Precision(energy_tokens=1000, energy_tool_calls=10)
    thresholds = (0.15, 0.35, 0.6)
    assert [p.select(x, thresholds) for x in (0.1, 0.2, 0.5, 0.7)] == ["exploit", "balanced", "explore", "conservative"]
    assert p.requires_approval("write") and not p.requires_approval("read")
    assert p.max_tool_calls(12) == 4 and p.max_tool_calls(2) == 2
    p.select(0.2, thresholds)
    assert p.max_tool_calls(12, multiplier=1.5) == 7
    p.spend(tokens=950)
    assert p.budget_critical() and p.max_tool_calls(12) == 0
    p.begin_turn()
    assert not p.budget_critical()


# -- lessons ---------------------------------------------------------------------------------------
def test_lessons_from_negative_turns_retrieved_and_reinforced(db: Database) -> None:
    assert derive_lesson(task_type="action", prompt="fix it", calls=[("read_file", "ok")], status="completed",
                         sentiment="neutral") is None
    draft = derive_lesson(task_type="action", prompt="update the config file", calls=[("patch_file", "invalid_arguments")],
                          status="completed", sentiment="neutral")
    assert draft is not None and "patch_file" in draft.lesson and "config" in draft.keywords
    lessons = Lessons(db)
    lid = lessons.learn(draft, "ses_1")
    assert lessons.learn(draft, "ses_1") == lid  # the same lesson again reinforces, not duplicates
    row = db.one("SELECT confidence FROM cognition_lessons WHERE id = ?", (lid,))
    assert row is not None and row["confidence"] == pytest.approx(0.55)
    found = lessons.retrieve("question", "what is in the config")  # other task type, shared keyword
    assert [f[0] for f in found] == [lid]
    assert lessons.retrieve("planning", "unrelated words") == []
    lessons.reinforce([lid])
    row = db.one("SELECT confidence, times_applied FROM cognition_lessons WHERE id = ?", (lid,))
    assert row is not None and row["times_applied"] == 1 and row["confidence"] == pytest.approx(0.55 + 0.045)
    assert _store.count_lessons(db) == (1, 1)


# -- phi ---------------------------------------------------------------------------------------------
def test_phi_against_hand_computed_example() -> None:
    board = Blackboard()
    a = board.post("surprise", "alpha beta", SalienceFactors(urgency=1))
    board.post("perception", "gamma delta", SalienceFactors(urgency=1))
    board.read("precision", source="surprise")  # surprise -> precision
    board.read("context", source="surprise")  # surprise -> context
    board.read("surprise", source="surprise")  # self-read: not coupling
    m = compute_phi(board.reads, board.entries.values(), ["surprise", "perception", "precision", "context"])
    assert m.active_coupling_pairs == 2 and m.total_possible_pairs == 12
    assert m.coupling_score == pytest.approx(2 / 12, abs=1e-4)
    assert m.cross_read_utilization == pytest.approx(0.5)  # one of two entries read by a non-author
    h = -3 * (1 / 3) * math.log(1 / 3)  # three readers, one read each
    assert m.information_flow_entropy == pytest.approx(h / math.log(4), abs=1e-4)
    assert m.phi_proxy == pytest.approx(0.35 * 2 / 12 + 0.35 * 0.5 + 0.30 * h / math.log(4), abs=1e-3)
    assert a.read_by == {"precision": 1, "context": 1, "surprise": 1}


# -- holographic -------------------------------------------------------------------------------------
def test_hrr_recalls_the_right_entry_among_thirty() -> None:
    hrr = Holographic(dim=1024)
    topics = ["database migration failed", "user prefers short answers", "the build uses pytest", "deploy to staging",
              "rate limit reached on http_get", "memory graph found alice"]
    for i in range(30):
        hrr.add(i + 1, "surprise", f"{topics[i % len(topics)]} item{i} token{i * 7}")
    assert hrr.capacity() == (30, int(1024 * CAPACITY_PER_DIM)) == (30, 40)
    hits = hrr.query("memory graph alice item17 token119", k=1)
    assert hits[0][0] == 18
    hrr.remove(18)
    assert all(h[0] != 18 for h in hrr.query("item17 token119", k=3))
    board = Blackboard()
    board.post("lessons", "split large patches", SalienceFactors())
    hrr.sync(board.entries.values())
    assert hrr.capacity()[0] == 1 and hrr.query("split patches", k=1)[0][1] > 0.6  # 2 of 4 words, unit vectors: ~0.71


# -- sphere ------------------------------------------------------------------------------------------
def test_sphere_rotates_without_jumps_and_reaches_its_target() -> None:
    sphere = CognitiveSphere()
    previous = (sphere.theta, sphere.phi)
    targets = [(1.0, 0.0)] * 10 + [(0.0, 0.6)] * 15 + [(0.5, 1.0)] * 15
    for fe, ps in targets:
        moved = sphere.update(fe, ps)
        here = (sphere.theta, sphere.phi)
        assert moved <= MAX_STEP + 1e-9
        assert angular_distance(previous, here) <= MAX_STEP + 1e-6
        assert 0 <= sphere.theta <= math.pi
        previous = here
    assert angular_distance((sphere.theta, sphere.phi), (math.pi * 0.5, math.pi * 1.0)) < 0.05
    assert free_energy(1.0, 1.0) == 1.0 and free_energy(0.0, 0.5) == pytest.approx(0.2)
    assert psi(1, 1, 1, 0) == 0.0 and psi(0.5, 0.5, 0.5, 0.5) == pytest.approx(0.5)
    again = CognitiveSphere()
    again.load(sphere.dump())
    assert (again.theta, again.phi) == (sphere.theta, sphere.phi)


# -- predictor ---------------------------------------------------------------------------------------
def _generated_audit(db: Database, n: int = 600) -> None:
    """Tools with very different reliabilities; big arguments fail more; failures come in streaks."""
    import random

    rng = random.Random(3)
    fail_rate = {"read_file": 0.05, "list_dir": 0.02, "run_command": 0.55, "http_get": 0.7, "patch_file": 0.35}
    tools = list(fail_rate)
    records = SqliteRecordStore(db)
    for i in range(n):
        tool = rng.choice(tools)
        big = rng.random() < 0.3
        p_fail = min(0.95, fail_rate[tool] + (0.3 if big else 0.0))
        ok = rng.random() >= p_fail
        records.record_tool_call(ToolCallRecord(
            session_id=f"s{i // 10}", turn_id=None, call_id=f"c{i}", tool=tool,
            arguments={"x": "y" * (4000 if big else 10)}, outcome="ok" if ok else "error",
            latency_ms=1.0, approval="allow"))


def test_predictor_beats_constant_baseline_on_generated_audit_log(db: Database) -> None:
    _generated_audit(db)
    predictor = StepPredictor()
    acc = predictor.fit_audit(SqliteRecordStore(db))
    assert acc["samples"] == 600
    assert acc["accuracy"] > acc["baseline_accuracy"] + 0.05
    assert predictor.trained
    # Learned probabilities order the tools by their true reliability.
    p_read = predictor.predict(predictor.features("read_file", arg_bytes=20))
    p_http = predictor.predict(predictor.features("http_get", arg_bytes=20))
    assert p_read > 0.7 > p_http
    restored = StepPredictor(seed=99)
    restored.load(predictor.dump())
    x = predictor.features("run_command", arg_bytes=5000)
    assert restored.predict(x) == pytest.approx(predictor.predict(x))


def test_prequential_helper_matches_constant_data() -> None:
    acc = prequential([("t", None, 10, False, True)] * 50)
    assert acc["baseline_accuracy"] == 1.0 and acc["accuracy"] >= 0.9


# -- protocols ---------------------------------------------------------------------------------------
def test_every_module_has_a_neutral_noop() -> None:
    surprise: SurpriseSource = NullSurprise()
    beliefs: BeliefTracker = NullBeliefs()
    board: Workspace = NullBlackboard()
    neuro: Neuromodulator = NullNeuromod()
    precision: PrecisionPolicy = NullPrecision()
    graph: AssociativeMemory = NullGraphRecall()
    lessons: CausalReasoner = NullLessons()
    phi: IntegrationMetric = NullIntegration()
    hrr: HolographicStore = NullHolographic()
    mods = [surprise, beliefs, board, neuro, precision, graph, lessons, phi, hrr]
    assert all(m.status() == {"enabled": False} and not m.enabled for m in mods)
    assert len({m.name for m in mods}) == 9
    assert surprise.observe(Prediction("t", 0.5, 0, 0.5), False, 1) == 0.0 and surprise.ema == 0.25
    assert precision.max_tool_calls(12) == 12 and not precision.requires_approval("write")
    assert neuro.thresholds() == (0.15, 0.35, 0.60) and neuro.timeout_multiplier() == 1.0
    assert board.post("x", "y", SalienceFactors()) is None and board.broadcast() == []
    assert graph.recall("anything") == [] and lessons.retrieve("action", "x") == [] and hrr.query("x") == []
    assert phi.measure({}, [], []) is None and beliefs.efe(["a"]) == []


@pytest.mark.parametrize("module", [
    "colony.cognition", "colony.cognition.surprise", "colony.cognition.beliefs", "colony.cognition.blackboard",
    "colony.cognition.neuromod", "colony.cognition.precision", "colony.cognition.memory_graph",
    "colony.cognition.lessons", "colony.cognition.phi", "colony.cognition.holographic", "colony.cognition.sphere",
    "colony.cognition.predictor", "colony.cognition.protocols", "colony.cognition.state", "colony.cognition.substrate",
    "colony.cognition.speculative", "colony.evals", "colony.evals.models", "colony.evals.properties",
    "colony.evals.stats", "colony.evals.runner", "colony.evals.ab", "colony.evals.seed",
])
def test_exported_names_exist(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    assert mod.__all__
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{module}.{name}"
