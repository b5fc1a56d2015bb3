"""The fusion rule on corpora it was not tuned on: fused recall@5 ≥ the best single channel − 0.02
on every question type, pooled over 4 held-out seeds of each generator.

How the calibration was made (`colony.memory._calibrated`, ``scripts/fit_memory_fusion.py``): the
coefficients on the first generator's seeds 101–103 only; the one threshold of the
fallback chosen on the second generator's seeds 101–103. Here: seeds 201–204 of both (held-out
worlds), and seeds 201–204 of the third generator (``diary``: one user's life as a personal
assistant remembers it), which no part of the fit ever saw. Pooling the seeds gives ~100
questions of each type per generator, so one question moves a type's recall by ~0.01.

The rule holds on every type of every generator but multi-hop on civic and diary (issue 18): the
graph orders a link's continuations by the kind of answer asked for and, since the last round, by
the kinds the question passes through on the way ("the *area* around X's workplace") and finds
numbered-list items ("routes 46 and 28") and names after a lower-case first word as entities.
That raised both channels (pooled here: civic graph 0.691 → 0.754, fused 0.605 → 0.665; diary
graph 0.557 → 0.583, fused 0.506 → 0.530) but not the gap: the graph's recall@5 still comes
partly from its ranks 3-5 (the right path second or third behind one that reaches a person of
the wrong role), and fusion keeps only its first two or three ranks. A strict xfail holds those
two gaps to account, so closing one turns the test red until its xfail is removed.
Abstention is held to the same corpora: a calibrated "nothing relevant" that rarely fires on
answerable questions and catches a good part of the unanswerable.
"""

from __future__ import annotations

from functools import cache

import pytest
from evals.memory.corpora import Generator, evaluate
from evals.memory.heldout import MARGIN, SEEDS, Pooled, pooled


@cache
def _held_out(generator: Generator) -> Pooled:
    """One generator's held-out seeds, built, recalled and pooled once for the whole module."""
    return pooled([evaluate(generator, seed, 1000, 200) for seed in SEEDS])


@pytest.fixture(scope="module", params=["kestrel", "civic", "diary"])
def unseen(request: pytest.FixtureRequest) -> tuple[str, Pooled]:
    generator = request.param
    return generator, _held_out(generator)


_OPEN_GAP = pytest.mark.xfail(strict=True, reason="issue 18 is open: multi-hop fused recall trails the graph "
                              "channel (civic 0.662 vs 0.754, diary 0.530 vs 0.583, pooled over seeds 201-204)")


@pytest.mark.slow
@pytest.mark.parametrize("generator", ["kestrel", pytest.param("civic", marks=_OPEN_GAP),
                                       pytest.param("diary", marks=_OPEN_GAP)])
def test_multi_hop_fusion_is_never_much_worse_than_the_graph_on_unseen_corpora(generator: Generator) -> None:
    result = _held_out(generator)
    fused, best, recall = result.gap("multi_hop")
    assert fused >= recall - MARGIN, (generator, fused, best, recall)


@pytest.mark.slow
def test_fusion_is_never_much_worse_than_the_best_channel_on_unseen_corpora(unseen: tuple[str, Pooled]) -> None:
    """Every type but multi-hop within the margin of its best channel; multi-hop within 0.15; the
    "nothing relevant" signal rarely fires on answerable questions and catches some unanswerable ones."""
    generator, result = unseen
    assert set(result.counts) == {"identifier", "knowledge_update", "multi_hop", "paraphrase", "plain", "temporal"}
    assert set(result.shortfalls()) <= {"multi_hop"}, (generator, result.shortfalls())
    fused, best, recall = result.gap("multi_hop")
    assert fused >= recall - 0.15, (generator, fused, best, recall)
    assert result.false_abstain <= 0.10 and result.caught >= 0.20, (generator, result.false_abstain, result.caught)


def test_pooling_weights_each_seed_by_its_questions() -> None:
    """Two seeds' reports pooled: recall is per question, not the mean of the seeds' means."""
    from evals.memory.metrics import ConfigResult, EvalReport, Score

    def report(recall: float, n: int) -> EvalReport:
        by_type = {"plain": Score(recall=recall, mrr=recall, n=n)}
        configs = {c: ConfigResult(overall=Score(recall=recall, mrr=recall, n=n), by_type=by_type,
                                   latency_ms_p50=1.0, latency_ms_p95=1.0)
                   for c in ("keyword", "semantic", "graph", "fused")}
        return EvalReport(k=5, memories=100, questions=n, configs=configs, per_question=[])

    result = pooled([report(1.0, 30), report(0.0, 10)])
    assert result.recall["fused"]["plain"] == pytest.approx(0.75)  # 30 of 40 questions, not (1 + 0) / 2
    assert result.counts == {"plain": 40}
