"""Retrieval metrics and the eval's report.

recall@k is the share of a question's relevant memories found in the top k (a question with
two relevant memories and one found scores 0.5); MRR is the mean over questions of one over
the rank of the first relevant memory, zero when none is in the top k. Both are averaged per
question type and over the whole set.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Sequence

from pydantic import BaseModel, Field

__all__ = ["ConfigResult", "EvalReport", "QuestionResult", "Score", "recall_at_k", "reciprocal_rank", "summarise"]


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


class QuestionResult(BaseModel):
    id: str
    type: str
    #: Per configuration: recall@k and the rank of the first relevant memory (None: not in the top k).
    recall: dict[str, float]
    first_rank: dict[str, int | None]


class ConfigResult(BaseModel):
    overall: Score
    by_type: dict[str, Score]
    latency_ms_p50: float
    latency_ms_p95: float
    #: Why a channel this configuration asked for could not run (e.g. no embedding model).
    down: dict[str, str] = Field(default_factory=dict)


class EvalReport(BaseModel):
    k: int
    memories: int
    questions: int
    embedder: str | None = None
    ingest_seconds: float | None = None
    configs: dict[str, ConfigResult]
    per_question: list[QuestionResult]


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
    down: dict[str, dict[str, str]], *, k: int, memories: int,
) -> EvalReport:
    types = sorted({r.type for r in rows})
    results = {
        c: ConfigResult(
            overall=_score(rows, c),
            by_type={t: _score([r for r in rows if r.type == t], c) for t in types},
            latency_ms_p50=_percentile(latencies[c], 50), latency_ms_p95=_percentile(latencies[c], 95),
            down=down.get(c, {}),
        )
        for c in configs
    }
    return EvalReport(k=k, memories=memories, questions=len(rows), configs=results, per_question=list(rows))
