"""Retrieval metrics and the eval's report.

recall@k is the share of a question's relevant memories found in the top k (a question with
two relevant memories and one found scores 0.5); MRR is the mean over questions of one over
the rank of the first relevant memory, zero when none is in the top k. Both are averaged per
question type and over the whole set of answerable questions.

Abstention questions have no relevant memory, so recall@k means nothing for them. They are
scored from the recall's own "nothing relevant" signal (`RecallResult.abstained`), as a binary
classifier whose positive class is "unanswerable": precision (of the recalls that abstained,
the share that should have), recall (of the unanswerable questions, the share abstained on),
accuracy over all questions, and the false-abstention rate on answerable questions (an agent
that abstains wrongly loses a memory it had). `relevance_auc` says how well the continuous
`RecallResult.relevance` ranks answerable above unanswerable questions, whatever the threshold.
When the Memory API has no ``abstained`` field, the score is marked unavailable.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Sequence

from pydantic import BaseModel, Field

__all__ = ["AbstentionScore", "ConfigResult", "EvalReport", "QuestionResult", "Score", "auc", "recall_at_k",
           "reciprocal_rank", "summarise"]


def recall_at_k(retrieved: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Fraction of `relevant` among the first `k` of `retrieved` (duplicates count once)."""
    if not relevant:
        raise ValueError("a question needs at least one relevant memory")
    return len(set(retrieved[:k]) & set(relevant)) / len(set(relevant))


def reciprocal_rank(retrieved: Sequence[int], relevant: Collection[int], k: int) -> float:
    """1 / rank of the first relevant item within the top `k`; 0 if none is there."""
    wanted = set(relevant)
    for rank, item in enumerate(retrieved[:k], start=1):
        if item in wanted:
            return 1.0 / rank
    return 0.0


class Score(BaseModel):
    recall: float
    mrr: float
    n: int


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(a random positive scores above a random negative), ties counting half; None if a side is empty."""
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


class QuestionResult(BaseModel):
    id: str
    type: str
    #: Per configuration: recall@k and the rank of the first relevant memory (None: not in the top k).
    #: Both are empty for a question with nothing relevant (abstention).
    recall: dict[str, float]
    first_rank: dict[str, int | None]
    answerable: bool = True
    #: Multi-hop path length, when the corpus records it.
    hops: int | None = None
    #: Per configuration: the recall's "nothing relevant" signal and its relevance (None: the API has neither).
    abstained: dict[str, bool | None] = Field(default_factory=dict)
    relevance: dict[str, float | None] = Field(default_factory=dict)
    #: Knowledge updates only: a superseded version ranked above the current one (or in its place).
    stale_first: dict[str, bool] = Field(default_factory=dict)


class AbstentionScore(BaseModel):
    available: bool
    unanswerable: int
    answerable: int
    precision: float | None = None
    recall: float | None = None
    accuracy: float | None = None
    #: Share of answerable questions on which recall said "nothing relevant", overall and per type.
    false_abstention: float | None = None
    false_abstention_by_type: dict[str, float] = Field(default_factory=dict)
    relevance_auc: float | None = None


class ConfigResult(BaseModel):
    overall: Score
    by_type: dict[str, Score]
    latency_ms_p50: float
    latency_ms_p95: float
    #: Why a channel this configuration asked for could not run (e.g. no embedding model).
    down: dict[str, str] = Field(default_factory=dict)
    #: Multi-hop questions by path length ("2", "3"), when the corpus records it.
    by_hops: dict[str, Score] = Field(default_factory=dict)
    abstention: AbstentionScore | None = None
    #: Share of knowledge-update questions where a superseded version outranked the current one.
    stale_first: float | None = None


class EvalReport(BaseModel):
    k: int
    memories: int
    questions: int
    embedder: str | None = None
    ingest_seconds: float | None = None
    configs: dict[str, ConfigResult]
    per_question: list[QuestionResult]
    #: How the run differed from the full protocol (e.g. recall could not see history).
    notes: list[str] = Field(default_factory=list)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _abstention(rows: Sequence[QuestionResult], config: str) -> AbstentionScore | None:
    unanswerable = [r for r in rows if not r.answerable]
    answerable = [r for r in rows if r.answerable]
    if not unanswerable:
        return None
    signals = [r.abstained.get(config) for r in rows]
    if any(s is None for s in signals):
        return AbstentionScore(available=False, unanswerable=len(unanswerable), answerable=len(answerable))
    true_pos = sum(bool(r.abstained[config]) for r in unanswerable)
    false_pos = sum(bool(r.abstained[config]) for r in answerable)
    by_type: dict[str, list[bool]] = {}
    for r in answerable:
        by_type.setdefault(r.type, []).append(bool(r.abstained[config]))
    relevance_pos = [r.relevance.get(config) for r in answerable]
    relevance_neg = [r.relevance.get(config) for r in unanswerable]
    area = None
    if all(v is not None for v in relevance_pos + relevance_neg):
        area = auc([float(v) for v in relevance_pos if v is not None], [float(v) for v in relevance_neg if v is not None])
    return AbstentionScore(
        available=True, unanswerable=len(unanswerable), answerable=len(answerable),
        precision=_ratio(true_pos, true_pos + false_pos), recall=_ratio(true_pos, len(unanswerable)),
        accuracy=_ratio(true_pos + len(answerable) - false_pos, len(rows)),
        false_abstention=_ratio(false_pos, len(answerable)),
        false_abstention_by_type={t: round(sum(v) / len(v), 4) for t, v in sorted(by_type.items())},
        relevance_auc=round(area, 4) if area is not None else None,
    )


def _score(rows: Sequence[QuestionResult], config: str) -> Score:
    n = len(rows)
    if n == 0:
        return Score(recall=0.0, mrr=0.0, n=0)
    ranks = [r.first_rank[config] for r in rows]
    rr = [1.0 / rank if rank else 0.0 for rank in ranks]
    return Score(recall=round(sum(r.recall[config] for r in rows) / n, 4), mrr=round(sum(rr) / n, 4), n=n)


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 3)


def summarise(
    rows: Sequence[QuestionResult], configs: Sequence[str], latencies: dict[str, list[float]],
    down: dict[str, dict[str, str]], *, k: int, memories: int, notes: Sequence[str] = (),
) -> EvalReport:
    """Average the per-question results into one `ConfigResult` per configuration."""
    answerable = [r for r in rows if r.answerable]
    types = sorted({r.type for r in answerable})
    hops = sorted({r.hops for r in answerable if r.hops is not None})
    updates = [r for r in answerable if r.stale_first]
    results = {
        c: ConfigResult(
            overall=_score(answerable, c),
            by_type={t: _score([r for r in answerable if r.type == t], c) for t in types},
            latency_ms_p50=_percentile(latencies[c], 50), latency_ms_p95=_percentile(latencies[c], 95),
            down=down.get(c, {}),
            by_hops={str(h): _score([r for r in answerable if r.hops == h], c) for h in hops},
            abstention=_abstention(rows, c),
            stale_first=_ratio(sum(r.stale_first[c] for r in updates), len(updates)),
        )
        for c in configs
    }
    return EvalReport(k=k, memories=memories, questions=len(rows), configs=results, per_question=list(rows),
                      notes=list(notes))
