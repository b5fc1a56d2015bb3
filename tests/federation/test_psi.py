"""Psi(t): its four factors, hostile peer states, the time series, and the sphere's phi following it."""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import pytest

from colony.cognition import build_substrate, state
from colony.cognition.sphere import MAX_STEP, angular_distance
from colony.config import Settings
from colony.federation.psi import (
    PeerState,
    PsiReading,
    PsiSeries,
    colony_psi,
    diversity,
    intelligence,
    rate_per_hour,
    sync,
    velocity,
)
from colony.store import open_database

NAN, INF = math.nan, math.inf
W = (1.0, 0.0, 0.0)


def peer(name: str = "a", **kw: object) -> PeerState:
    return PeerState(node=name, **kw)  # type: ignore[arg-type]


# -- intelligence ---------------------------------------------------------------------------------
def test_intelligence_is_the_mean_score_with_missing_and_hostile_counting_zero() -> None:
    assert intelligence([peer(score=0.8), peer(score=0.4)]) == pytest.approx(0.6)
    assert intelligence([peer(score=0.8), peer(score=None), peer(score=NAN), peer(score=INF)]) == pytest.approx(0.2)
    assert intelligence([peer(score=7.0), peer(score=-3.0)]) == pytest.approx(0.5)  # clipped to [0, 1]
    assert intelligence([]) == 0.0


# -- sync ------------------------------------------------------------------------------------------
def test_sync_counts_rounds_behind_and_weights_that_drift() -> None:
    on_time = [peer(weights_round=4, weights=W), peer(weights_round=4, weights=W)]
    assert sync(on_time, canonical_round=4, canonical=W) == pytest.approx(1.0)
    behind = [peer(weights_round=4), peer(weights_round=3), peer(weights_round=2)]
    assert sync(behind, canonical_round=4) == pytest.approx((1 + 0.5 + 0.25) / 3)
    assert sync(behind) == pytest.approx((1 + 0.5 + 0.25) / 3)  # newest reported round stands in
    drifted = [peer(weights_round=4, weights=(1.0, 1.0, 0.0))]
    assert sync(drifted, canonical_round=4, canonical=W) == pytest.approx(math.sqrt(0.5))
    opposite = [peer(weights_round=4, weights=(-1.0, 0.0, 0.0))]
    assert sync(opposite, canonical_round=4, canonical=W) == 0.0


def test_sync_hostile_inputs() -> None:
    assert sync([]) == 0.0
    assert sync([peer(), peer()]) == 0.0  # nobody reports a round
    hostile = [peer(weights_round=-1), peer(weights_round=4, weights=(1.0, 0.0)),
               peer(weights_round=4, weights=(NAN, 0.0, 0.0)), peer(weights_round=4, weights=W)]
    assert sync(hostile, canonical_round=4, canonical=W) == pytest.approx(0.25)
    ahead = [peer(weights_round=10**9)]  # claims a round far past the canonical: not in sync
    assert sync(ahead, canonical_round=1) == pytest.approx(2.0 ** -64)
    # an unusable canonical vector is ignored rather than zeroing everyone
    assert sync([peer(weights_round=1, weights=W)], canonical_round=1, canonical=(NAN, 1.0, 0.0)) == 1.0
    assert 0.0 <= sync([peer(weights_round=1, weights=(0.0, 0.0, 0.0))], canonical_round=1, canonical=W) <= 1.0


# -- diversity -------------------------------------------------------------------------------------
def test_diversity_is_mean_pairwise_jaccard_distance() -> None:
    same = [peer("a", skills=frozenset({"py", "sql"})), peer("b", skills=frozenset({"py", "sql"}))]
    assert diversity(same) == 0.0
    apart = [peer("a", skills=frozenset({"py"})), peer("b", skills=frozenset({"rust"}))]
    assert diversity(apart) == 1.0
    mixed = [peer("a", skills=frozenset({"py", "sql"})), peer("b", skills=frozenset({"py", "rust"})),
             peer("c", skills=frozenset())]
    assert diversity(mixed) == pytest.approx((1 - 1 / 3) / 3)  # pairs with an empty set count 0
    assert diversity([peer(skills=frozenset({"py"}))]) == 0.0 and diversity([]) == 0.0


# -- velocity --------------------------------------------------------------------------------------
def test_velocity_squashes_the_improvement_rate() -> None:
    rising = peer(history=((0.0, 0.50), (1800.0, 0.55), (3600.0, 0.60)))
    falling = peer(history=((0.0, 0.60), (3600.0, 0.50)))
    flat = peer(history=((0.0, 0.5), (7200.0, 0.5)))
    assert rate_per_hour(rising.history) == pytest.approx(0.10)
    assert velocity([rising]) == pytest.approx(0.5 * (1 + math.tanh(2.0)))
    assert velocity([falling]) < 0.5 < velocity([rising])
    assert velocity([flat]) == 0.5
    assert velocity([rising, falling]) == pytest.approx(0.5)  # +0.1 and -0.1 per hour cancel


def test_velocity_hostile_histories() -> None:
    assert rate_per_hour(((0.0, 0.5), (30.0, 0.9))) is None  # under a minute: noise
    assert rate_per_hour(((NAN, 0.5), (0.0, NAN), (INF, 0.2))) is None
    assert rate_per_hour(((3600.0, 0.6), (0.0, 0.5), (NAN, 0.9))) == pytest.approx(0.1)  # any order
    assert rate_per_hour(((0.0, -5.0), (3600.0, 9.0))) == pytest.approx(1.0)  # scores clipped first
    assert velocity([peer()]) == 0.5 and velocity([]) == 0.0


# -- Psi -------------------------------------------------------------------------------------------
def test_psi_of_empty_single_and_healthy_colonies() -> None:
    empty = colony_psi([])
    assert (empty.psi, empty.intelligence, empty.sync, empty.diversity, empty.velocity, empty.nodes) == (0, 0, 0, 0, 0, 0)
    alone = colony_psi([peer(score=0.9, weights_round=1, skills=frozenset({"py"}))], canonical_round=1)
    assert alone.psi == 0.0 and alone.diversity == 0.0  # a colony of one stays at "self"
    healthy = [
        peer("a", score=0.7, weights_round=3, weights=W, skills=frozenset({"py", "sql"}),
             history=((0.0, 0.6), (3600.0, 0.7))),
        peer("b", score=0.6, weights_round=3, weights=W, skills=frozenset({"rust"}),
             history=((0.0, 0.55), (3600.0, 0.6))),
        peer("c", score=0.5, weights_round=2, skills=frozenset({"py", "web"})),
    ]
    r = colony_psi(healthy, canonical_round=3, canonical=W)
    assert r.nodes == 3 and 0 < r.psi < 1
    assert r.psi == pytest.approx((r.intelligence * r.sync * r.diversity * r.velocity) ** 0.25)
    assert all(0.0 <= f <= 1.0 for f in (r.intelligence, r.sync, r.diversity, r.velocity))
    nan_peer = colony_psi([*healthy, peer("d", score=NAN, weights_round=NAN, history=((NAN, NAN),))])
    assert math.isfinite(nan_peer.psi)


# -- the series ------------------------------------------------------------------------------------
def _reading(psi: float) -> PsiReading:
    return PsiReading(intelligence=psi, sync=psi, diversity=psi, velocity=psi, psi=psi, nodes=3)


def test_series_keeps_order_interval_and_length() -> None:
    s = PsiSeries(maxlen=3, min_interval_s=10.0)
    assert s.record(100.0, _reading(0.1))
    assert not s.record(105.0, _reading(0.2))  # too soon
    assert not s.record(50.0, _reading(0.2))   # backwards
    assert not s.record(NAN, _reading(0.2)) and not s.record(200.0, _reading(NAN))
    for i, t in enumerate((110.0, 120.0, 130.0)):
        assert s.record(t, _reading(0.2 + i / 10))
    assert [row["at"] for row in s.samples()] == [110.0, 120.0, 130.0]
    assert [row["at"] for row in s.samples(since=120.0)] == [120.0, 130.0]
    assert s.status()["latest"] == {"psi": 0.4, "intelligence": 0.4, "sync": 0.4, "diversity": 0.4,
                                    "velocity": 0.4, "nodes": 3}


def test_series_persists_in_the_cognition_store_and_drops_hostile_rows(tmp_path: Path) -> None:
    db = open_database(tmp_path / "node.db")
    s = PsiSeries()
    s.record(1000.0, _reading(0.3))
    s.record(1060.0, _reading(0.5))
    state.save(db, [s])
    again = PsiSeries()
    assert state.restore(db, [again]) == ["colony_psi"]
    assert again.samples() == s.samples()
    hostile = PsiSeries()
    hostile.load({"rows": [[1.0, 0.2, 0.2, 0.2, 0.2, 0.2, 2], "junk", [2.0, NAN, 0, 0, 0, 0, 1],
                           [3.0, 5.0, 0, 0, 0, 0, 1], [0.5, 0.1, 0, 0, 0, 0, 1], [4.0, 0.1, 0, 0, 0, 0, -1],
                           [5.0, "x", 0, 0, 0, 0, 1], [6.0, 0.4, 0.4, 0.4, 0.4, 0.4, 2]]})
    assert [row["at"] for row in hostile.samples()] == [1.0, 6.0]
    db.close()


# -- the sphere follows Psi ------------------------------------------------------------------------
def test_phi_turns_toward_colony_as_psi_rises_and_back_as_it_falls(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", memory_embedder="none", cognition_enabled=True)
    db = open_database(tmp_path / "node.db")
    sub = build_substrate(db, settings)
    assert sub.sphere is not None
    sphere = sub.sphere

    def walk(values: list[float]) -> list[float]:
        phis = []
        for v in values:
            here = (sphere.theta, sphere.phi)
            moved = sub.set_colony_psi(v)
            assert moved <= MAX_STEP + 1e-9
            assert angular_distance(here, (sphere.theta, sphere.phi)) <= MAX_STEP + 1e-6  # no jumps
            phis.append(sphere.phi)
        return phis

    walk([0.0] * 10)  # settle at "self" (phi = 0) first
    assert sphere.phi == pytest.approx(0.0, abs=1e-6)
    rising = walk([i / 20 for i in range(21)] + [1.0] * 15)
    assert all(b >= a - 1e-9 for a, b in pairwise(rising))  # monotone toward colony
    assert rising[-1] == pytest.approx(math.pi, abs=0.05)
    assert sub.status()["psi"] == 1.0
    falling = walk([0.25] * 30)
    assert all(b <= a + 1e-9 for a, b in pairwise(falling))
    assert falling[-1] == pytest.approx(0.25 * math.pi, abs=0.05)
    walk([NAN] * 30)  # garbage from the colony counts as no colony
    assert sub.psi == 0.0 and sphere.phi == pytest.approx(0.0, abs=0.05)
    db.close()
