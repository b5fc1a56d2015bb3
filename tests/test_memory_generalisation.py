"""The fusion rule on corpora it was not tuned on: fused recall@5 ≥ the best single channel − 0.02
on every question type, pooled over 4 held-out seeds of each generator.

How the calibration was made (`colony.memory._calibrated`, ``scripts/fit_memory_fusion.py``): the
coefficients on the first generator's seeds 101–103 only; the one threshold of the semantic
fallback chosen on the second generator's seeds 101–103. Here: seeds 201–204 of both (held-out
worlds), and seeds 201–204 of the third generator (``diary``: one user's life as a personal
assistant remembers it), which no part of the fit ever saw. Pooling the seeds gives ~100
questions of each type per generator, so one question moves a type's recall by ~0.01.

The rule holds on every type but multi-hop, which is still open (issue 18): a strict xfail holds
that gap to account on the two generators where it is clear, so fixing it turns the test red
until the xfail is removed. Abstention is held to the same corpora: a calibrated "nothing
relevant" that rarely fires on answerable questions and catches a good part of the unanswerable.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from evals.memory.corpora import evaluate
from evals.memory.metrics import EvalReport

SEEDS = (201, 202, 203, 204)
MARGIN = 0.02
SINGLES = ("keyword", "semantic", "graph")


def _pooled(reports: list[EvalReport]) -> dict[str, dict[str, float]]:
    """config → type → recall@5 over all the reports' questions of that type."""
    hits: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for report in reports:
        for name, config in report.configs.items():
            for qtype, score in config.by_type.items():
                if qtype == "abstention":
                    continue
                hits[name][qtype] += score.recall * score.n
                counts[name][qtype] += score.n
    return {name: {t: hits[name][t] / counts[name][t] for t in counts[name]} for name in counts}


@pytest.fixture(scope="module", params=["kestrel", "civic", "diary"])
def unseen(request: pytest.FixtureRequest) -> tuple[str, list[EvalReport]]:
    generator = request.param
    return generator, [evaluate(generator, seed, 1000, 200) for seed in SEEDS]


def _gaps(reports: list[EvalReport]) -> dict[str, tuple[float, str, float]]:
    """type → (fused, best single channel, its recall), pooled over the seeds."""
    pooled = _pooled(reports)
    out = {}
    for qtype, fused in sorted(pooled["fused"].items()):
        best_name = max(SINGLES, key=lambda c: pooled[c][qtype])
        out[qtype] = (fused, best_name, pooled[best_name][qtype])
    return out


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 18 is open: multi-hop fused recall trails the graph channel on unseen "
                   "corpora (kestrel -0.025, civic -0.114 pooled over seeds 201-204)")
@pytest.mark.parametrize("generator", ["kestrel", "civic"])
def test_multi_hop_fusion_is_never_much_worse_than_the_graph_on_unseen_corpora(generator: str) -> None:
    reports = [evaluate(generator, seed, 1000, 200) for seed in SEEDS]  # type: ignore[arg-type]
    fused, best, recall = _gaps(reports)["multi_hop"]
    assert fused >= recall - MARGIN, (generator, fused, best, recall)


@pytest.mark.slow
def test_fusion_is_never_much_worse_than_the_best_channel_on_unseen_corpora(
        unseen: tuple[str, list[EvalReport]]) -> None:
    """Every type but multi-hop within the margin of its best channel; multi-hop within 0.15; the
    "nothing relevant" signal rarely fires on answerable questions and catches some unanswerable ones."""
    generator, reports = unseen
    gaps = _gaps(reports)
    assert set(gaps) == {"identifier", "knowledge_update", "multi_hop", "paraphrase", "plain", "temporal"}, gaps
    problems = [f"{t}: fused {f:.3f} < {b} {r:.3f} - {MARGIN}" for t, (f, b, r) in gaps.items()
                if t != "multi_hop" and f < r - MARGIN]
    assert not problems, (generator, problems)
    fused, best, recall = gaps["multi_hop"]
    assert fused >= recall - 0.15, (generator, fused, best, recall)
    answerable = [q for r in reports for q in r.per_question if q.type != "abstention"]
    unanswerable = [q for r in reports for q in r.per_question if q.type == "abstention"]
    assert unanswerable and answerable
    wrong = sum(bool(q.abstained.get("fused")) for q in answerable) / len(answerable)
    caught = sum(bool(q.abstained.get("fused")) for q in unanswerable) / len(unanswerable)
    assert wrong <= 0.10 and caught >= 0.20, (generator, wrong, caught)
