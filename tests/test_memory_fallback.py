"""The fallback when nothing is likely relevant: the semantic and graph channels lead, rank by rank.

Issue 18: below ``fallback_below`` the semantic channel's order used to lead alone, which handed
multi-hop questions (the graph's path memories name nothing the question names, so the model is
unsure of them too) to the nearest meanings. Now the two channels that can find what shares no
word with the question interleave, so whichever holds the answer keeps its top ranks.
"""

from __future__ import annotations

from colony.memory._calibrated import (
    FEATURES,
    Calibration,
    QuerySignals,
    fallback_order,
    fuse_calibrated,
    interleave,
)

WEAK = Calibration(coefficients={c: (-5.0, -1.0, 1.0, *(0.0 for _ in range(len(FEATURES[c]) - 3)))
                                 for c in FEATURES}, abstain_below=0.0, meta={}, fallback_below=0.3)


def test_interleave_takes_each_ranking_rank_by_rank_and_each_memory_once() -> None:
    semantic = [(5, 0.4), (6, 0.39), (7, 0.38)]
    graph = [(9, 0.2), (5, 0.2)]
    assert interleave([semantic, graph]) == [5, 9, 6, 7]
    assert interleave([semantic, []]) == [5, 6, 7]
    assert interleave([]) == []


def test_below_the_threshold_the_graph_path_leads_beside_the_nearest_meanings() -> None:
    # A two-hop question: keywords match the first memory's siblings, the nearest meanings are
    # chance, and the graph's path (21 → 22) names nothing the question does.
    ranked = {"keyword": [(1, 3.0), (2, 2.9), (3, 2.8)],
              "semantic": [(5, 0.41), (6, 0.40), (7, 0.39), (8, 0.38)],
              "graph": [(22, 0.3), (21, 0.3), (23, 0.1)]}
    fused, relevance = fuse_calibrated(ranked, QuerySignals(), WEAK)  # type: ignore[arg-type]
    assert relevance < WEAK.fallback_below
    order = fallback_order(ranked, fused, relevance, WEAK)  # type: ignore[arg-type]
    assert order is not None
    ids = [m for m, _, _ in order]
    assert ids[:7] == [5, 22, 6, 21, 7, 23, 8]  # both of the path's memories within the top 5
    assert ids[7:] == [m for m, _, _ in fused if m in {1, 2, 3}]  # then the rest, in fused order


def test_above_the_threshold_the_fused_order_stands_even_with_a_graph_path() -> None:
    ranked = {"semantic": [(5, 0.41)], "graph": [(22, 0.3), (21, 0.3)]}
    fused, relevance = fuse_calibrated(ranked, QuerySignals(), WEAK)  # type: ignore[arg-type]
    sure = Calibration(WEAK.coefficients, 0.0, {}, fallback_below=relevance)
    assert fallback_order(ranked, fused, relevance, sure) is None  # type: ignore[arg-type]
    assert fallback_order({"graph": ranked["graph"]}, fused, relevance, WEAK) is None  # type: ignore[arg-type]
