"""Beta reputation with forgetting: values worked out by hand from E = (r+1)/(r+s+2)."""

from __future__ import annotations

import random

import pytest

from colony.identity.keys import SchnorrKey
from colony.market import (
    PRIOR,
    Feedback,
    MarketEventError,
    ReputationBook,
    ReputationParams,
    feedback_event,
    read_feedback,
    replay,
)

P, X, Y, Z = "a" * 64, "b" * 64, "c" * 64, "d" * 64


def always(_ref: str, _rater: str, _ratee: str) -> bool:
    return True


def fb(rater: str, ratee: str, score: int, ref: str, at: int = 0) -> Feedback:
    return Feedback(event_id=f"{ref}@{at}", rater=rater, ratee=ratee, payment_ref=ref, score=score, at=at)


def book(lam: float = 1.0) -> ReputationBook:
    return ReputationBook(is_settled=always, params=ReputationParams(forgetting=lam))


def test_newcomers_start_at_the_prior() -> None:
    assert PRIOR == 0.5
    assert book().expectation(X) == 0.5


def test_formula_values() -> None:
    b = book(lam=0.9)
    b.add(fb(P, X, 100, "p1"))  # P is new: weight 0.5 -> r = 0.5, s = 0
    assert b.expectation(X) == pytest.approx(1.5 / 2.5)
    b.add(fb(P, X, 100, "p2"))  # r = 0.9 * 0.5 + 0.5 = 0.95
    assert b.expectation(X) == pytest.approx(1.95 / 2.95)
    b.add(fb(P, X, 0, "p3"))  # r = 0.855, s = 0.5
    assert b.expectation(X) == pytest.approx(1.855 / 3.355)
    b.add(fb(P, X, 70, "p4"))  # r = 0.7695 + 0.35 = 1.1195, s = 0.45 + 0.15 = 0.6
    assert b.expectation(X) == pytest.approx(2.1195 / 3.7195)
    assert b.standings[X].count == 4


def test_forgetting_lets_recent_behaviour_dominate() -> None:
    history = [0, 0, 0, 100, 100, 100]
    remembering, forgetting = book(lam=1.0), book(lam=0.5)
    for i, score in enumerate(history):
        remembering.add(fb(P, X, score, f"p{i}"))
        forgetting.add(fb(P, X, score, f"p{i}"))
    # λ = 1: r = s = 1.5 -> 0.5.  λ = 0.5: s = 0.875 then halves three times to 0.109375; r = 0.875.
    assert remembering.expectation(X) == pytest.approx(0.5)
    assert forgetting.expectation(X) == pytest.approx(1.875 / (0.875 + 0.109375 + 2))


def test_no_self_rating_by_key_or_owner() -> None:
    b = ReputationBook(is_settled=always, owners={X: "node-1", Y: "node-1", Z: "node-2"})
    assert b.add(fb(X, X, 100, "p1")) == "self_rating"
    assert b.add(fb(Y, X, 100, "p2")) == "self_rating"  # node-mates
    assert b.add(fb(Z, X, 100, "p3")) is None
    assert b.expectation(X) == pytest.approx(1.5 / 2.5)


def test_unsettled_feedback_is_ignored() -> None:
    settled = {("p1", P, X)}
    b = ReputationBook(is_settled=lambda ref, rater, ratee: (ref, rater, ratee) in settled)
    assert b.add(fb(P, X, 0, "p9")) == "unsettled"
    assert b.add(fb(Y, X, 0, "p1")) == "unsettled"  # a real payment, but not between these two
    assert b.expectation(X) == 0.5
    assert b.add(fb(P, X, 0, "p1")) is None
    assert b.expectation(X) == pytest.approx(1 / 2.5)
    assert [reason for _, reason in b.ignored] == ["unsettled", "unsettled"]


def test_one_feedback_per_payment_and_rater() -> None:
    b = book()
    assert b.add(fb(P, X, 0, "p1")) is None
    assert b.add(fb(P, X, 0, "p1", at=5)) == "duplicate"
    assert b.expectation(X) == pytest.approx(1 / 2.5)
    assert b.add(fb(X, P, 100, "p1")) is None  # the other side of the same payment may rate once


def test_rater_weight_is_its_own_reputation() -> None:
    b = book()
    b.add(fb(P, X, 100, "p1"))  # X: r = 0.5 -> E = 0.6
    b.add(fb(X, Y, 100, "p2"))  # established X rates Y with weight 0.6: E = 1.6 / 2.6
    newcomer = "e" * 64
    b.add(fb(newcomer, Z, 100, "p4"))  # a fresh key rates at the prior: E = 1.5 / 2.5
    assert b.expectation(Y) == pytest.approx(1.6 / 2.6)
    assert b.expectation(Z) == pytest.approx(1.5 / 2.5)
    assert b.expectation(Y) > b.expectation(Z)


def test_bad_raters_weigh_little() -> None:
    b = book()
    for i in range(3):
        b.add(fb(P, X, 0, f"bad{i}"))  # X: s = 1.5 -> E = 1 / 3.5
    b.add(fb(X, Y, 0, "p9"))  # X's slander of Y weighs 1/3.5
    assert b.expectation(Y) == pytest.approx(1 / (1 / 3.5 + 2))


def test_a_sybil_identity_is_only_worth_the_prior() -> None:
    b = book(lam=0.95)
    for i in range(10):
        b.add(fb(P, X, 100, f"good{i}"))
    fresh = SchnorrKey.generate().public_hex
    assert b.expectation(fresh) == 0.5 < b.expectation(X)


def test_replay_is_order_independent_and_deterministic() -> None:
    events = [fb(P, X, 100, "p1", at=1), fb(X, Y, 40, "p2", at=2), fb(Y, Z, 0, "p3", at=3),
              fb(P, X, 0, "p4", at=4), fb(Z, X, 90, "p5", at=5), fb(P, X, 0, "p4", at=6)]
    reference = replay(events, is_settled=always).standings
    shuffled = events[:]
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert replay(shuffled, is_settled=always).standings == reference


def test_bad_scores_are_ignored() -> None:
    assert book().add(fb(P, X, 101, "p1")) == "bad_score"


def test_feedback_events_round_trip_and_forgeries_are_refused() -> None:
    rater = SchnorrKey(bytes.fromhex("55" * 32))
    ev = feedback_event(rater, X, "hold:42", 80, created_at=1_000)
    got = read_feedback(ev)
    assert (got.rater, got.ratee, got.payment_ref, got.score, got.at) == (rater.public_hex, X, "hold:42", 80, 1_000)
    forged = ev.model_copy(update={"content": ev.content.replace('"score":80', '"score":100')})
    with pytest.raises(MarketEventError) as err:
        read_feedback(forged)
    assert err.value.reason == "bad_signature"


def test_forgetting_factor_is_bounded() -> None:
    with pytest.raises(ValueError, match="forgetting"):
        ReputationParams(forgetting=1.5)
