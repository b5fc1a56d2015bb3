"""Fusion of the recall channels: RRF, the gentle quality factors, protection of a channel's
best answer, and compression to a context budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from colony.memory.fusion import FRESHNESS_FLOOR, compress, fuse, protect_top

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def row(mid: int, confidence: float = 0.7, verified: str = "inferred", age_days: float = 0) -> dict[str, Any]:
    created = (NOW - timedelta(days=age_days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"id": mid, "confidence": confidence, "verified": verified, "created_at": created}


def test_agreement_and_rank_both_count() -> None:
    rows = {i: row(i) for i in range(1, 5)}
    fused = fuse({"keyword": [(1, 9.0), (2, 5.0)], "semantic": [(2, 0.9), (3, 0.8)]}, rows,
                 freshness_per_day=0.0, now=NOW)
    order = [m for m, _, _ in fused]
    assert order[0] == 2  # found by both
    assert set(order) == {1, 2, 3}
    hits = {m: {(h.channel, h.rank) for h in hs} for m, _, hs in fused}
    assert hits[2] == {("keyword", 2), ("semantic", 1)}


def test_quality_factors_break_ties_but_do_not_override_relevance() -> None:
    rows = {1: row(1, confidence=0.1), 2: row(2, confidence=1.0, verified="user_stated")}
    tie = fuse({"keyword": [(1, 1.0)], "semantic": [(2, 1.0)]}, rows, freshness_per_day=0.0, now=NOW)
    assert [m for m, _, _ in tie] == [2, 1]  # same rank in its channel: the surer one first
    rows = {i: row(i, confidence=0.1 if i == 1 else 1.0) for i in range(1, 12)}
    clear = fuse({"keyword": [(i, 1.0) for i in range(1, 12)]}, rows, freshness_per_day=0.0, now=NOW)
    assert clear[0][0] == 1  # rank 1 with low confidence still beats rank 11 with high confidence


def test_freshness_decays_to_a_floor() -> None:
    rows = {1: row(1, age_days=0), 2: row(2, age_days=10_000)}
    fused = fuse({"keyword": [(2, 1.0)], "semantic": [(1, 1.0)]}, rows, freshness_per_day=0.01, now=NOW)
    scores = {m: s for m, s, _ in fused}
    assert scores[1] > scores[2] >= scores[1] * FRESHNESS_FLOOR * 0.99


def test_forgotten_ids_are_dropped() -> None:
    fused = fuse({"keyword": [(1, 1.0), (99, 1.0)]}, {1: row(1)}, freshness_per_day=0.0, now=NOW)
    assert [m for m, _, _ in fused] == [1]


def test_a_protected_channels_best_answer_keeps_a_place() -> None:
    rows = {i: row(i) for i in range(1, 20)}
    # keyword and graph agree on 1..6; only the semantic channel found 7 (a paraphrase).
    ranked = {"keyword": [(i, 1.0) for i in range(1, 7)], "graph": [(i, 1.0) for i in range(1, 7)],
              "semantic": [(7, 1.0)]}
    fused = fuse(ranked, rows, freshness_per_day=0.0, now=NOW)  # type: ignore[arg-type]
    assert 7 not in [m for m, _, _ in fused[:5]]
    top = [m for m, _, _ in protect_top(fused, 5)[:5]]
    assert 7 in top and top[:4] == [1, 2, 3, 4]
    # Nothing is lost: the displaced entry follows.
    assert [m for m, _, _ in protect_top(fused, 5)][5] == 5


def test_compress_keeps_whole_items_then_shortens_one() -> None:
    out = compress(["a" * 50, "b" * 50, "c" * 500], budget_chars=200)
    assert out[:2] == ["a" * 50, "b" * 50] and out[2].endswith("…") and len("".join(out)) <= 200
    assert compress(["x" * 10], budget_chars=20) == []  # no room worth using


def test_protection_depth_per_channel() -> None:
    rows = {i: row(i) for i in range(1, 30)}
    ranked = {"keyword": [(i, 1.0) for i in range(1, 8)], "semantic": [(i, 1.0) for i in range(1, 8)],
              "graph": [(20, 1.0), (21, 0.9), (22, 0.8)]}
    fused = fuse(ranked, rows, freshness_per_day=0.0, now=NOW, weights={"keyword": 1, "semantic": 1, "graph": 0.1})  # type: ignore[arg-type]
    top = [m for m, _, _ in protect_top(fused, 5, {"graph": 3})[:5]]
    assert {20, 21, 22} <= set(top) and top[:2] == [1, 2]
    assert [m for m, _, _ in protect_top(fused, 5, {"graph": 1})[:5]].count(21) == 0
