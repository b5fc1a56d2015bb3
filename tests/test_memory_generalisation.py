"""The fusion rule on corpora it was not tuned on: fused recall@5 ≥ the best single channel − 0.02
on every question type, pooled over 4 held-out seeds of each generator — not met yet (issue 18
is open), so that test is a strict xfail and a second test holds what is already true.

The calibration (`colony.memory._calibrated`, ``scripts/fit_memory_fusion.py``) was fitted on the
first generator's seeds 101–103 only. Here: seeds 201–204 of that generator (held-out worlds) and
seeds 201–204 of the second, independent generator (a city council, other templates, names and
question wordings, written after the tuning). Pooling the seeds per type gives ~100 questions of
each type per generator, so one question moves a type's recall by ~0.01, not by more than the
margin; abstention is held to the same corpora: a calibrated "nothing relevant" that rarely fires
on answerable questions and mostly fires on unanswerable ones.
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


@pytest.fixture(scope="module", params=["kestrel", "civic"])
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
@pytest.mark.xfail(strict=True, reason="issue 18 is open: on unseen corpora fused recall still trails the semantic "
                   "channel on paraphrases (kestrel -0.026, civic -0.086) and the graph on civic multi-hop (-0.070)")
def test_fusion_is_never_much_worse_than_the_best_channel_on_unseen_corpora(
        unseen: tuple[str, list[EvalReport]]) -> None:
    _, reports = unseen
    problems = [f"{t}: fused {f:.3f} < {b} {r:.3f} - {MARGIN}" for t, (f, b, r) in _gaps(reports).items()
                if f < r - MARGIN]
    assert not problems, problems


@pytest.mark.slow
def test_fusion_on_unseen_corpora_holds_where_it_holds_and_abstains_with_few_false_alarms(
        unseen: tuple[str, list[EvalReport]]) -> None:
    """What the rule above already gets right stays right: identifiers, knowledge updates, plain
    and temporal questions within the margin; no type more than 0.10 behind its best channel; the
    "nothing relevant" signal rarely fires on answerable questions and catches some unanswerable ones."""
    generator, reports = unseen
    gaps = _gaps(reports)
    for qtype in ("identifier", "knowledge_update", "plain", "temporal"):
        fused, best, recall = gaps[qtype]
        assert fused >= recall - MARGIN, (generator, qtype, fused, best, recall)
    assert all(f >= r - 0.10 for f, _, r in gaps.values()), gaps
    answerable = [q for r in reports for q in r.per_question if q.type != "abstention"]
    unanswerable = [q for r in reports for q in r.per_question if q.type == "abstention"]
    assert unanswerable and answerable
    wrong = sum(bool(q.abstained.get("fused")) for q in answerable) / len(answerable)
    caught = sum(bool(q.abstained.get("fused")) for q in unanswerable) / len(unanswerable)
    assert wrong <= 0.10 and caught >= 0.15, (generator, wrong, caught)
